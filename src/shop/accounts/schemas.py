"""Wire shapes of the accounts domain (field names follow the Django app shop replaces).

Lengths are bounded here, so an absurd body is a 400 before any rule runs;
the rules themselves (email syntax, password strength) live in the services.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from shop.accounts.passwords import MAX_LENGTH

__all__ = [
    "AdminUserUpdate",
    "LoginIn",
    "LogoutIn",
    "Profile",
    "ProfileUpdate",
    "RefreshIn",
    "RegisterIn",
    "TokenPair",
    "UserWithTokens",
]

Email = Annotated[str, msgspec.Meta(max_length=254, examples=["u1@example.com"])]
Username = Annotated[
    str,
    msgspec.Meta(
        max_length=150,
        description="Letters, digits and @ . + - _ only; unique case-insensitively",
        examples=["u1"],
    ),
]
Password = Annotated[str, msgspec.Meta(max_length=MAX_LENGTH, examples=["StrongPass123!"])]
Phone = Annotated[str, msgspec.Meta(max_length=32, examples=["+70000000000"])]
Address = Annotated[str, msgspec.Meta(max_length=1000, examples=["1 Main Street, Springfield"])]
Token = Annotated[str, msgspec.Meta(max_length=4096, description="A JWT")]


class RegisterIn(msgspec.Struct):
    username: Username
    email: Email
    password: Password
    password_confirm: Password
    phone: Phone | None = None
    address: Address | None = None


class LoginIn(msgspec.Struct):
    email: Email
    password: Password


class RefreshIn(msgspec.Struct):
    refresh: Token


class LogoutIn(msgspec.Struct):
    refresh: Token


ReadOnly = msgspec.Meta(extra_json_schema={"extra": {"read_only": True}})
"""OpenAPI ``readOnly``: sent by the server; a client sending it back is ignored."""


class Profile(msgspec.Struct):
    id: Annotated[int, ReadOnly]
    username: str
    email: str
    phone: str
    address: str
    is_staff: Annotated[bool, ReadOnly]
    date_joined: Annotated[datetime, ReadOnly]


class TokenPair(msgspec.Struct):
    access: Annotated[str, msgspec.Meta(description="Access JWT, sent as `Authorization: Bearer`")]
    refresh: Annotated[str, msgspec.Meta(description="Refresh JWT; single use, rotates")]


class UserWithTokens(msgspec.Struct):
    user: Profile
    access: str
    refresh: str


class ProfileUpdate(msgspec.Struct):
    """Omitted fields stay as they are; ``null`` clears phone or address.

    Changing ``email`` needs ``current_password`` too. Read-only profile fields
    (``id``, ``is_staff``, ``date_joined``) sent back are ignored, as in the Django app.
    """

    username: Username | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType = msgspec.UNSET
    current_password: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=MAX_LENGTH,
                description="The account's password; required when changing ``email``",
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    phone: Phone | msgspec.UnsetType | None = msgspec.UNSET
    address: Address | msgspec.UnsetType | None = msgspec.UNSET


class AdminUserUpdate(msgspec.Struct):
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    is_staff: bool | msgspec.UnsetType = msgspec.UNSET


class AdminUser(msgspec.Struct):
    id: int
    username: str
    email: str
    phone: str
    address: str
    is_staff: bool
    is_active: bool
    date_joined: datetime
