"""HTTP layer of accounts: register, login, token refresh, logout, profile, staff flags."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import SecurityRequirement
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts import services
from shop.accounts.models import User
from shop.accounts.schemas import (
    AdminUser,
    AdminUserUpdate,
    LoginIn,
    LogoutIn,
    Profile,
    ProfileUpdate,
    RefreshIn,
    RegisterIn,
    TokenPair,
    UserWithTokens,
)
from shop.accounts.security import CurrentUser, requires_staff
from shop.accounts.throttle import LoginThrottle
from shop.accounts.tokens import IssuedTokens, TokenService
from shop.accounts.users import UserService
from shop.cache import Cache
from shop.errors import problem_responses
from shop.settings import Settings

__all__ = ["routes"]

PUBLIC: dict[str, Any] = {"exclude_from_auth": True}
NO_AUTH: list[SecurityRequirement] = [{}]
"""OpenAPI: this operation needs no credentials (overrides the app-wide Bearer requirement)."""


def provide_throttle(state: State, settings: NamedDependency[Settings]) -> LoginThrottle:
    return LoginThrottle(state.session_maker, settings)


def provide_tokens(
    state: State, db_session: NamedDependency[AsyncSession], settings: NamedDependency[Settings]
) -> TokenService:
    return TokenService(db_session, settings, state.session_maker)


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def profile_of(user: User) -> Profile:
    return Profile(
        id=user.id,
        username=user.username,
        email=user.email,
        phone=user.phone,
        address=user.address,
        is_staff=user.is_staff,
        date_joined=user.date_joined,
    )


def with_tokens(user: User, tokens: IssuedTokens) -> UserWithTokens:
    return UserWithTokens(user=profile_of(user), access=tokens.access, refresh=tokens.refresh)


class AuthController(Controller):
    path = "/api/auth"
    tags = ["accounts"]
    dependencies = {
        "throttle": Provide(provide_throttle, sync_to_thread=False),
        "tokens": Provide(provide_tokens, sync_to_thread=False),
    }

    @post(
        "/register",
        opt=PUBLIC,
        security=NO_AUTH,
        summary="Create an account and log in",
        responses=problem_responses(
            400,
            409,
            429,
            s400="Invalid email or username, weak password (each failing rule listed) "
            "or mismatched confirmation",
            s409="Email or username already taken",
            s429="Too many registrations from this address; see Retry-After",
        ),
    )
    async def register(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RegisterIn],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        throttle: NamedDependency[LoginThrottle],
        tokens: NamedDependency[TokenService],
    ) -> UserWithTokens:
        """The email is the login name (unique case-insensitively); the username is unique too.

        Password rules: at least 8 characters, not entirely numeric, not a
        common password, not too similar to the username or email.
        """
        user, issued = await services.register(
            db_session, settings, throttle, tokens, data, client_address(request)
        )
        return with_tokens(user, issued)

    @post(
        "/login",
        opt=PUBLIC,
        security=NO_AUTH,
        status_code=200,
        summary="Log in with email and password",
        responses=problem_responses(
            401,
            429,
            s401="Unknown email, wrong password or inactive account (one answer for all)",
            s429="Too many failed logins for this email or from this address; see Retry-After",
        ),
    )
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginIn],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        throttle: NamedDependency[LoginThrottle],
        tokens: NamedDependency[TokenService],
    ) -> UserWithTokens:
        """Starts a new refresh-token family (one per login session)."""
        user, issued = await services.login(
            db_session,
            settings,
            throttle,
            tokens,
            data.email,
            data.password,
            client_address(request),
        )
        return with_tokens(user, issued)

    @post(
        "/token/refresh",
        opt=PUBLIC,
        security=NO_AUTH,
        status_code=200,
        summary="Exchange a refresh token for a new pair",
        responses=problem_responses(
            401, s401="Invalid, expired, revoked or already used refresh token"
        ),
    )
    async def refresh(
        self,
        data: JSONBody[RefreshIn],
        tokens: NamedDependency[TokenService],
    ) -> TokenPair:
        """Refresh tokens are single use: the one sent stops working.

        Sending an already used one again is treated as theft: its whole
        family is revoked, including the newest token, and the user must log in.
        """
        issued = await tokens.rotate(data.refresh)
        return TokenPair(access=issued.access, refresh=issued.refresh)

    @post(
        "/logout",
        status_code=204,
        summary="Revoke a refresh token's family",
        responses=problem_responses(401, 403, s403="The refresh token belongs to another user"),
    )
    async def logout(
        self,
        request: Request[CurrentUser, Any, Any],
        data: JSONBody[LogoutIn],
        tokens: NamedDependency[TokenService],
    ) -> None:
        """Every refresh token of that login session stops working; access tokens just expire."""
        await tokens.logout(data.refresh, request.user.id)

    @get("/profile", summary="The caller's profile", responses=problem_responses(401))
    async def get_profile(
        self, request: Request[CurrentUser, Any, Any], db_session: NamedDependency[AsyncSession]
    ) -> Profile:
        return profile_of(await UserService(session=db_session).get_profile(request.user.id))

    @patch(
        "/profile",
        summary="Change username, phone, address or email",
        responses=problem_responses(
            400,
            401,
            403,
            409,
            429,
            s400="Invalid field, or an email change without current_password",
            s403="current_password is wrong",
            s409="Email or username already taken",
            s429="Too many wrong passwords for this account or from this address; see Retry-After",
        ),
    )
    async def update_profile(
        self,
        request: Request[CurrentUser, Any, Any],
        data: JSONBody[ProfileUpdate],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        throttle: NamedDependency[LoginThrottle],
        cache: NamedDependency[Cache],
    ) -> Profile:
        """Omitted fields stay unchanged; `null` clears phone or address.

        Changing `email` needs `current_password`; it ends the user's other login
        sessions (their refresh tokens stop working), not this one. `id`,
        `is_staff` and `date_joined` are read-only: sent back, they are ignored.
        """
        user = await services.update_profile(
            db_session,
            settings,
            throttle,
            cache,
            user_id=request.user.id,
            changes=data,
            session_family=request.auth.fam,
            client=client_address(request),
        )
        return profile_of(user)


class UserAdminController(Controller):
    path = "/api/admin/users"
    tags = ["admin"]
    guards = [requires_staff]

    @patch(
        "/{user_id:int}",
        summary="Activate, deactivate, promote or demote a user (staff)",
        responses=problem_responses(
            400, 401, 403, 404, 409, s409="Staff cannot change their own flags"
        ),
    )
    async def update_user(
        self,
        request: Request[CurrentUser, Any, Any],
        user_id: FromPath[int],
        data: JSONBody[AdminUserUpdate],
        db_session: NamedDependency[AsyncSession],
        cache: NamedDependency[Cache],
    ) -> AdminUser:
        """Takes effect on the user's next request; deactivating revokes their refresh tokens."""
        user = await UserService(session=db_session).set_flags(
            user_id,
            cache=cache,
            actor_id=request.user.id,
            is_active=data.is_active if isinstance(data.is_active, bool) else None,
            is_staff=data.is_staff if isinstance(data.is_staff, bool) else None,
        )
        return AdminUser(
            id=user.id,
            username=user.username,
            email=user.email,
            phone=user.phone,
            address=user.address,
            is_staff=user.is_staff,
            is_active=user.is_active,
            date_joined=user.date_joined,
        )


routes: list[Any] = [AuthController, UserAdminController]
