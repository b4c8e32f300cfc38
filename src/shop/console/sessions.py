"""Staff sign-in and the server-side console session.

Signing in runs the API login's checks in the same order with the same parts:
`LoginThrottle` (the PostgreSQL throttle counters every instance shares, keyed
by e-mail and client address exactly as ``POST /api/auth/login``) and
`UserService.authenticate` (constant-time verification, rehash on a changed
cost). A customer's correct password counts as a failure and gets the same
message as a wrong one, so the console does not reveal who is staff.

The session cookie carries 32 random bytes; the table keeps their SHA-256.
Every console request runs one ``SELECT`` joining the session to its user
that checks the session (it exists, it was used within the idle timeout, its
user is still active and staff); the use is recorded at most once a minute.
The user's flags are read
from PostgreSQL on every request, never from a cache, so deactivating or
demoting a staff member ends their console session on their next request, on
every instance.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shop.accounts.models import User
from shop.accounts.security import CurrentUser, passwords_for
from shop.accounts.throttle import LoginThrottle
from shop.accounts.users import InvalidCredentials, UserService
from shop.console.models import ConsoleSession
from shop.settings import Settings

__all__ = ["COOKIE", "current_staff", "sign_in", "sign_out"]

COOKIE = "shop_console"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def sign_in(
    session: AsyncSession,
    settings: Settings,
    throttle: LoginThrottle,
    *,
    email: str,
    password: str,
    client: str,
) -> tuple[User, str]:
    """A new console session for an active staff member: ``(user, cookie token)``.

    Raises `TooManyLoginAttempts` once throttled and `InvalidCredentials` (the
    API's message) for an unknown e-mail, a wrong password, an inactive
    account or a customer.
    """
    await throttle.ensure_login_allowed(session, email, client)
    user = await UserService(session=session).authenticate(
        email, password, passwords_for(settings.passwords)
    )
    if user is None or not user.is_staff:
        await throttle.login_failed(email, client)
        raise InvalidCredentials()
    await throttle.login_succeeded(session, email)
    # Clean up on use, like the API's refresh families: idle sessions can never be used again.
    await purge_idle(session, timedelta(minutes=settings.console.idle_minutes))
    token = secrets.token_urlsafe(32)
    session.add(ConsoleSession(token_hash=_hash(token), user_id=user.id))
    await session.flush()
    return user, token


TOUCH_EVERY = timedelta(seconds=60)
"""A session's last use is written at most this often: most pages then cost one read,
and the idle timeout is exact to within this much."""


async def current_staff(engine: AsyncEngine, token: str, idle: timedelta) -> CurrentUser | None:
    """The staff member this cookie token signs in, or None; records the use now and then.

    Runs on its own connection in autocommit mode (the page's transaction is
    not open yet when the session is checked): one round trip for the check,
    a second one for the write only when the last recorded use is older than
    `TOUCH_EVERY`.
    """
    token_hash = _hash(token)
    check = (
        select(ConsoleSession.last_seen_at, User.id, User.username, User.email)
        .join(User, User.id == ConsoleSession.user_id)
        .where(
            ConsoleSession.token_hash == token_hash,
            ConsoleSession.last_seen_at > func.now() - idle,
            User.is_active.is_(True),
            User.is_staff.is_(True),
        )
    )
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        row = (await autocommit.execute(check)).one_or_none()
        if row is None:
            return None
        if row.last_seen_at < datetime.now(UTC) - TOUCH_EVERY:
            await autocommit.execute(
                update(ConsoleSession)
                .where(ConsoleSession.token_hash == token_hash)
                .values(last_seen_at=func.now())
            )
    return CurrentUser(
        id=row.id, username=row.username, email=row.email, is_staff=True, is_active=True
    )


async def sign_out(session: AsyncSession, token: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _hash(token)))


async def purge_idle(session: AsyncSession, idle: timedelta) -> None:
    """Delete sessions idle for longer than ``idle`` (they can no longer be used)."""
    await session.execute(
        delete(ConsoleSession).where(ConsoleSession.last_seen_at <= func.now() - idle)
    )
