"""Business rules of accounts.

`UserService.create_user` is the one way a user comes to exist: registration
and `shop users create` both call it, so the rules are written once.

Two kinds of writes must outlive a request that answers with an error (and so
rolls back): a failed login counted for throttling, and a refresh-token family
revoked because a retired token came back. `AccountGuard` makes those in their
own short transactions; everything else rides the request's transaction.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy.exc import IntegrityError

from shop.accounts.models import User
from shop.accounts.passwords import password_problems
from shop.accounts.repositories import RefreshFamilyRepository, ThrottleRepository, UserRepository
from shop.accounts.security import (
    InvalidToken,
    Passwords,
    decode_token,
    encode_token,
    forget_user,
    passwords_for,
)
from shop.db import after_commit
from shop.errors import Conflict, Forbidden, InvalidInput, NotFound, TooManyRequests, Unauthorized

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from shop.accounts.schemas import ProfileUpdate, RegisterIn
    from shop.cache import Cache
    from shop.settings import Settings

__all__ = [
    "AccountGuard",
    "EmailTaken",
    "InvalidCredentials",
    "TokenService",
    "UserService",
    "UsernameTaken",
    "WrongPassword",
    "create_user_from_cli",
    "normalise_email",
    "purge_expired",
    "register",
    "update_profile",
]

logger = logging.getLogger("shop.accounts")

"""A client address may fail this many times more than one email: an office shares an address."""

# Django's EmailValidator: ASCII dot-atom local part; an IDN domain is checked IDNA-encoded.
_EMAIL_USER = re.compile(r"^[-!#$%&'*+/=?^_`{}|~0-9a-z]+(\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*\Z")
_EMAIL_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}(?<!-)\Z")
_USERNAME = re.compile(r"^[\w.@+-]+\Z")


class EmailTaken(Conflict):
    """A user with this email already exists."""


class UsernameTaken(Conflict):
    """A user with this username already exists."""


class WrongPassword(Forbidden):
    """The current password is wrong."""


class InvalidCredentials(Unauthorized):
    """No active account found with the given credentials."""


class TooManyLoginAttempts(TooManyRequests):
    """Too many failed login attempts; try again later."""


class TooManyRegistrations(TooManyRequests):
    """Too many registrations from this address; try again later."""


class ReusedRefreshToken(InvalidToken):
    """Token is invalid or expired."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def normalise_username(username: str) -> str:
    return unicodedata.normalize("NFKC", username.strip())


def email_problem(email: str) -> str | None:
    """Why ``email`` (already normalised) is not an address, or None."""
    user, _, domain = email.rpartition("@")
    if not user or not domain or len(email) > 254 or not _EMAIL_USER.match(user):
        return "Enter a valid email address."
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "Enter a valid email address."
    if not _EMAIL_DOMAIN.match(ascii_domain):
        return "Enter a valid email address."
    return None


def username_problem(username: str) -> str | None:
    if not username:
        return "This field may not be blank."
    if len(username) > 150:
        return "Ensure this field has no more than 150 characters."
    if not _USERNAME.match(username):
        return "Enter a valid username: letters, digits and @ . + - _ only."
    return None


@dataclass(frozen=True)
class IssuedTokens:
    access: str
    refresh: str


class UserService(SQLAlchemyAsyncRepositoryService[User, UserRepository]):
    repository_type = UserRepository

    @property
    def _session(self) -> AsyncSession:
        session: AsyncSession = self.repository.session  # type: ignore[assignment]
        return session

    async def create_user(
        self,
        *,
        email: str,
        username: str,
        password: str,
        phone: str = "",
        address: str = "",
        passwords: Passwords,
        staff: bool = False,
        password_confirm: str | None = None,
    ) -> User:
        """Check every rule, report all failures at once (400), then uniqueness (409)."""
        email = normalise_email(email)
        username = normalise_username(username)
        errors: list[dict[str, str]] = []
        if problem := email_problem(email):
            errors.append({"field": "email", "message": problem})
        if problem := username_problem(username):
            errors.append({"field": "username", "message": problem})
        if password_confirm is not None and password != password_confirm:
            errors.append(
                {"field": "password_confirm", "message": "The two password fields didn't match."}
            )
        errors += [
            {"field": "password", "message": message}
            for message in password_problems(password, username=username, email=email)
        ]
        if errors:
            raise InvalidInput("The account details are invalid.", errors=errors)
        await self._refuse_taken(email, username)
        user = User(
            email=email,
            username=username,
            password_hash=await passwords.hash_off_loop(password),
            phone=phone,
            address=address,
            is_staff=staff,
            is_active=True,
        )
        session = self.repository.session
        try:
            async with session.begin_nested():
                session.add(user)
                await session.flush()
        except IntegrityError:
            # Two registrations raced past the checks above; the unique index decided,
            # after the winner committed, so the same checks now name the taken field.
            await self._refuse_taken(email, username)
            raise EmailTaken("A user with this email or username already exists.") from None
        await session.refresh(user)
        return user

    async def _refuse_taken(self, email: str, username: str) -> None:
        if await self.repository.email_taken(email):
            raise EmailTaken(
                errors=[{"field": "email", "message": "A user with this email already exists."}]
            )
        if await self.repository.username_taken(username):
            raise UsernameTaken(
                errors=[
                    {"field": "username", "message": "A user with this username already exists."}
                ]
            )

    async def authenticate(self, email: str, password: str, passwords: Passwords) -> User | None:
        """The active user with this email and password, or None.

        An unknown email still verifies a dummy hash, and an inactive user's
        password is still checked, so every failure takes about as long.
        """
        user = await self.repository.get_by_email(normalise_email(email))
        valid, new_hash = await passwords.verify_off_loop(
            password, user.password_hash if user else None
        )
        if user is None or not valid or not user.is_active:
            return None
        if new_hash is not None:
            # The hashing parameters changed since: upgrade while we know the password.
            user.password_hash = new_hash
            await self.repository.session.flush()
        return user

    async def get_profile(self, user_id: int) -> User:
        user = await self.repository.get_by_id(user_id)
        if user is None:
            raise NotFound("User not found.")
        return user

    async def update_profile(self, user_id: int, changes: ProfileUpdate, cache: Cache) -> User:
        user = await self.get_profile(user_id)
        if changes.username is not msgspec.UNSET:
            username = normalise_username(changes.username)
            if problem := username_problem(username):
                raise InvalidInput(problem, errors=[{"field": "username", "message": problem}])
            if await self.repository.username_taken(username, excluding=user_id):
                raise UsernameTaken(
                    errors=[
                        {
                            "field": "username",
                            "message": "A user with this username already exists.",
                        }
                    ]
                )
            user.username = username
        if changes.phone is not msgspec.UNSET:
            user.phone = (changes.phone or "").strip()
        if changes.address is not msgspec.UNSET:
            user.address = (changes.address or "").strip()
        await self._flush_unique(user)
        after_commit(self._session, lambda: forget_user(cache, user_id))
        return user

    async def set_flags(
        self,
        user_id: int,
        *,
        cache: Cache,
        actor_id: int,
        is_active: bool | None = None,
        is_staff: bool | None = None,
    ) -> User:
        """Activate/deactivate or promote/demote; takes effect on the user's next request.

        A deactivated user's refresh families are revoked too, so no token
        pair outlives the decision. Staff may not change their own flags:
        that is how the last staff member locks everyone out.
        """
        if user_id == actor_id:
            raise Conflict("You cannot change your own staff or active flags.")
        user = await self.get_profile(user_id)
        if is_staff is not None:
            user.is_staff = is_staff
        if is_active is not None:
            user.is_active = is_active
            if not is_active:
                await RefreshFamilyRepository(session=self.repository.session).revoke_all_of(
                    user_id
                )
        await self.repository.session.flush()
        after_commit(self._session, lambda: forget_user(cache, user_id))
        return user

    async def staff_page(
        self,
        *,
        search: str | None = None,
        is_staff: bool | None = None,
        is_active: bool | None = None,
        joined_from: datetime | None = None,
        joined_to: datetime | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[list[User], int]:
        """The staff console's user list."""
        return await self.repository.staff_page(
            search=search.strip() if search else None,
            is_staff=is_staff,
            is_active=is_active,
            joined_from=joined_from,
            joined_to=joined_to,
            limit=limit,
            offset=offset,
        )

    async def names_of(self, user_ids: list[int]) -> dict[int, str]:
        return await self.repository.names_of(user_ids)

    async def _flush_unique(self, user: User) -> None:
        session = self.repository.session
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:
            # Raced past the checks by another request; the unique indexes decided.
            raise Conflict("A user with this email or username already exists.") from None
        await session.refresh(user)


class AccountGuard:
    """Throttling and token-theft responses that must persist even when the request fails.

    Each write runs in its own short transaction on ``session_maker``,
    because the request's transaction is rolled back with the 401/429 it
    answers. Counters live in PostgreSQL so every API instance sees them.
    """

    def __init__(self, session_maker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.session_maker = session_maker
        self.limit = settings.http.login_attempts
        self.address_limit = settings.http.login_attempts_per_address
        self.window = settings.http.login_window_seconds
        self.register_limit = settings.http.register_per_minute

    @staticmethod
    def login_keys(email: str, client: str) -> tuple[str, str]:
        return f"email:{normalise_email(email)}", f"ip:{client}"

    async def ensure_login_allowed(self, session: AsyncSession, email: str, client: str) -> None:
        seconds = await ThrottleRepository(session).seconds_blocked(
            list(self.login_keys(email, client))
        )
        if seconds:
            raise TooManyLoginAttempts(headers={"Retry-After": str(seconds)}, retry_after=seconds)

    async def login_failed(self, email: str, client: str) -> None:
        email_key, ip_key = self.login_keys(email, client)
        async with self.session_maker.begin() as session:
            throttle = ThrottleRepository(session)
            await throttle.count(email_key, limit=self.limit, window_seconds=self.window)
            await throttle.count(ip_key, limit=self.address_limit, window_seconds=self.window)

    @staticmethod
    async def login_succeeded(session: AsyncSession, email: str) -> None:
        # Only the email's counter resets: a valid login of one's own account
        # must not reset the counter of an address guessing other accounts.
        await ThrottleRepository(session).clear(AccountGuard.login_keys(email, "")[0])

    async def count_registration(self, client: str) -> None:
        """Every attempt counts: a 409 reveals that an email exists, so probing is rate-limited."""
        key = f"register:{client}"
        async with self.session_maker.begin() as session:
            throttle = ThrottleRepository(session)
            seconds = await throttle.seconds_blocked([key])
            if not seconds:
                await throttle.count(key, limit=self.register_limit, window_seconds=60)
        if seconds:
            raise TooManyRegistrations(headers={"Retry-After": str(seconds)}, retry_after=seconds)

    async def rotate_family(
        self,
        family_id: uuid.UUID,
        *,
        user_id: int,
        presented_jti: uuid.UUID,
        new_jti: uuid.UUID,
        expires_at: datetime,
    ) -> bool:
        """Rotate in a short transaction of its own; on failure find out why and act on it.

        Rotation cannot run in the request's transaction: when two requests
        race with one token, the loser's UPDATE waits for the winner, re-checks
        the row, matches nothing, and still keeps the row locked until its
        transaction ends (PostgreSQL locks the newest row version before
        re-checking). Revoking from a second connection would then wait for
        that lock forever. Here the check and the revocation share the lock.

        Expired family → delete it (clean up on use). A retired token of a
        live family → someone holds a copy: revoke the family, so the newest
        token stops working too and the user has to log in again.
        """
        async with self.session_maker.begin() as session:
            families = RefreshFamilyRepository(session=session)
            if await families.rotate(
                family_id,
                user_id=user_id,
                presented_jti=presented_jti,
                new_jti=new_jti,
                expires_at=expires_at,
            ):
                return True
            family = await families.get_for_update(family_id)
            if family is None:
                return False
            if family.expires_at <= datetime.now(UTC):
                await session.delete(family)
            elif family.revoked_at is None and family.current_jti != presented_jti:
                logger.warning(
                    "refresh token reused; revoking family %s of user %s", family_id, family.user_id
                )
                await families.revoke(family_id)
            return False


class TokenService:
    """Issues access/refresh pairs; refresh tokens rotate within a family stored in PostgreSQL."""

    def __init__(self, session: AsyncSession, settings: Settings, guard: AccountGuard) -> None:
        self.session = session
        self.settings = settings
        self.guard = guard
        self.families = RefreshFamilyRepository(session=session)

    async def start_family(self, user_id: int) -> IssuedTokens:
        """A new login session; this user's expired families are cleaned up on the way."""
        await self.families.delete_expired(user_id=user_id)
        family_id, jti = uuid.uuid4(), uuid.uuid4()
        refresh, claims = encode_token(
            self.settings.tokens, user_id, "refresh", family=family_id, jti=jti
        )
        await self.families.add(
            self.families.model_type(
                id=family_id,
                user_id=user_id,
                current_jti=jti,
                expires_at=datetime.fromtimestamp(claims.exp, UTC),
            )
        )
        access, _ = encode_token(self.settings.tokens, user_id, "access", family=family_id)
        return IssuedTokens(access=access, refresh=refresh)

    async def rotate(self, token: str) -> IssuedTokens:
        claims = decode_token(self.settings.tokens, token, "refresh")
        family_id, jti = _family_of(claims.fam, claims.jti)
        user_id = int(claims.sub)
        new_jti = uuid.uuid4()
        refresh, new_claims = encode_token(
            self.settings.tokens, user_id, "refresh", family=family_id, jti=new_jti
        )
        rotated = await self.guard.rotate_family(
            family_id,
            user_id=user_id,
            presented_jti=jti,
            new_jti=new_jti,
            expires_at=datetime.fromtimestamp(new_claims.exp, UTC),
        )
        if not rotated:
            raise ReusedRefreshToken()
        access, _ = encode_token(self.settings.tokens, user_id, "access", family=family_id)
        return IssuedTokens(access=access, refresh=refresh)

    async def logout(self, token: str, user_id: int) -> None:
        """Revoke the token's family; an expired or already revoked token is fine (idempotent)."""
        claims = decode_token(self.settings.tokens, token, "refresh", allow_expired=True)
        family_id, _ = _family_of(claims.fam, claims.jti)
        if int(claims.sub) != user_id:
            raise Forbidden("This refresh token belongs to another user.")
        await self.families.revoke(family_id, user_id=user_id)


def _family_of(family: str | None, jti: str) -> tuple[uuid.UUID, uuid.UUID]:
    try:
        return uuid.UUID(family or ""), uuid.UUID(jti)
    except ValueError:
        raise InvalidToken() from None


async def register(
    session: AsyncSession, settings: Settings, guard: AccountGuard, data: RegisterIn, client: str
) -> tuple[User, IssuedTokens]:
    await guard.count_registration(client)
    user = await UserService(session=session).create_user(
        email=data.email,
        username=data.username,
        password=data.password,
        password_confirm=data.password_confirm,
        passwords=passwords_for(settings.passwords),
        phone=(data.phone or "").strip(),
        address=(data.address or "").strip(),
    )
    tokens = await TokenService(session, settings, guard).start_family(user.id)
    return user, tokens


async def login(
    session: AsyncSession,
    settings: Settings,
    guard: AccountGuard,
    email: str,
    password: str,
    client: str,
) -> tuple[User, IssuedTokens]:
    """Same 401 for unknown email, wrong password and inactive user; 429 once throttled."""
    await guard.ensure_login_allowed(session, email, client)
    user = await UserService(session=session).authenticate(
        email, password, passwords_for(settings.passwords)
    )
    if user is None:
        await guard.login_failed(email, client)
        raise InvalidCredentials()
    await guard.login_succeeded(session, email)
    tokens = await TokenService(session, settings, guard).start_family(user.id)
    return user, tokens


async def update_profile(
    session: AsyncSession,
    settings: Settings,
    guard: AccountGuard,
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
        await guard.ensure_login_allowed(session, user.email, client)
        valid, _ = await passwords_for(settings.passwords).verify_off_loop(
            password, user.password_hash
        )
        if not valid:
            await guard.login_failed(user.email, client)
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


async def create_user_from_cli(
    settings: Settings, *, email: str, username: str, password: str, staff: bool
) -> int:
    from shop.db import create_engine, create_session_maker

    engine = create_engine(settings.database)
    try:
        async with create_session_maker(engine)() as session, session.begin():
            user = await UserService(session=session).create_user(
                email=email,
                username=username,
                password=password,
                staff=staff,
                passwords=passwords_for(settings.passwords),
            )
            return user.id
    finally:
        await engine.dispose()


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
