"""The account use cases a request runs: register, log in, change one's profile; and housekeeping.

Each combines the concepts of its own module: `shop.accounts.users` (the
account rules, `UserService`), `shop.accounts.throttle` (failed logins and
registrations, counted in their own transactions) and `shop.accounts.tokens`
(refresh-token families). Everything else rides the request's transaction.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import msgspec

from shop.accounts.repositories import RefreshFamilyRepository, ThrottleRepository
from shop.accounts.security import passwords_for
from shop.accounts.tokens import IssuedTokens, TokenService
from shop.accounts.users import (
    EmailTaken,
    InvalidCredentials,
    UserService,
    WrongPassword,
    email_problem,
    normalise_email,
)
from shop.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from shop.accounts.models import User
    from shop.accounts.schemas import ProfileUpdate, RegisterIn
    from shop.accounts.throttle import LoginThrottle
    from shop.cache import Cache
    from shop.settings import Settings

__all__ = ["login", "purge_expired", "register", "update_profile"]


async def register(
    session: AsyncSession,
    settings: Settings,
    throttle: LoginThrottle,
    tokens: TokenService,
    data: RegisterIn,
    client: str,
) -> tuple[User, IssuedTokens]:
    await throttle.count_registration(client)
    user = await UserService(session=session).create_user(
        email=data.email,
        username=data.username,
        password=data.password,
        password_confirm=data.password_confirm,
        passwords=passwords_for(settings.passwords),
        phone=(data.phone or "").strip(),
        address=(data.address or "").strip(),
    )
    return user, await tokens.start_family(user.id)


async def login(
    session: AsyncSession,
    settings: Settings,
    throttle: LoginThrottle,
    tokens: TokenService,
    email: str,
    password: str,
    client: str,
) -> tuple[User, IssuedTokens]:
    """Same 401 for unknown email, wrong password and inactive user; 429 once throttled."""
    await throttle.ensure_login_allowed(session, email, client)
    user = await UserService(session=session).authenticate(
        email, password, passwords_for(settings.passwords)
    )
    if user is None:
        await throttle.login_failed(email, client)
        raise InvalidCredentials()
    await throttle.login_succeeded(session, email)
    return user, await tokens.start_family(user.id)


async def update_profile(
    session: AsyncSession,
    settings: Settings,
    throttle: LoginThrottle,
    cache: Cache,
    *,
    user_id: int,
    changes: ProfileUpdate,
    session_family: str | None,
    client: str,
) -> User:
    """Change the caller's profile; a new email needs the current password.

    The email is the login name, so changing it is guarded like a login: the
    password is checked (wrong guesses count towards the login throttle), and
    every other login session of the user is ended: its refresh tokens stop
    working. The caller's own session (``session_family``, from the access
    token) keeps going. Checks run in this order: a malformed email (400), a
    missing (400) or wrong (403) password, then a taken email (409), so only
    the account's owner learns whether an email is registered.
    """
    users = UserService(session=session)
    user = await users.get_profile(user_id)
    email_changed = False
    if changes.email is not msgspec.UNSET and normalise_email(changes.email) != user.email:
        email = normalise_email(changes.email)
        if problem := email_problem(email):
            raise InvalidInput(problem, errors=[{"field": "email", "message": problem}])
        password = changes.current_password
        if password is msgspec.UNSET or not password:
            raise InvalidInput(
                "Changing the email needs the current password in current_password.",
                errors=[{"field": "current_password", "message": "This field is required."}],
            )
        await throttle.ensure_login_allowed(session, user.email, client)
        valid, _ = await passwords_for(settings.passwords).verify_off_loop(
            password, user.password_hash
        )
        if not valid:
            await throttle.login_failed(user.email, client)
            raise WrongPassword(
                errors=[{"field": "current_password", "message": "The current password is wrong."}]
            )
        if await users.repository.email_taken(email):
            raise EmailTaken(
                errors=[{"field": "email", "message": "A user with this email already exists."}]
            )
        user.email = email
        email_changed = True
    user = await users.update_profile(user_id, changes, cache)
    if email_changed:
        keep = _uuid_or_none(session_family)
        await RefreshFamilyRepository(session=session).revoke_all_of(user_id, keep=keep)
    return user


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def purge_expired(
    session_maker: async_sessionmaker[AsyncSession], settings: Settings
) -> tuple[int, int]:
    """Delete expired refresh families and finished throttle counters: ``(families, counters)``."""
    async with session_maker.begin() as session:
        families = await RefreshFamilyRepository(session=session).delete_expired()
        # Registration counters use a 60 s window, login counters a longer one: keep the longer.
        window = max(settings.http.login_window_seconds, 60)
        counters = await ThrottleRepository(session).delete_stale(window_seconds=window)
    return families, counters
