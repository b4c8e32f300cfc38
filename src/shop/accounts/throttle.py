"""Throttling of logins and registrations, counted in PostgreSQL so every API instance sees them.

A failed login (or registration attempt) must be counted even though the
request answers with an error and so rolls back its own transaction: the
counts are written in short transactions of their own (`LoginThrottle`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shop.accounts.repositories import ThrottleRepository
from shop.accounts.users import normalise_email
from shop.errors import TooManyRequests

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from shop.settings import Settings

__all__ = ["LoginThrottle", "TooManyLoginAttempts", "TooManyRegistrations"]


class TooManyLoginAttempts(TooManyRequests):
    """Too many failed login attempts; try again later."""


class TooManyRegistrations(TooManyRequests):
    """Too many registrations from this address; try again later."""


class LoginThrottle:
    """Login and registration throttling, whose counts must persist even when the request fails.

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
        await ThrottleRepository(session).clear(LoginThrottle.login_keys(email, "")[0])

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
