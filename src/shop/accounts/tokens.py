"""Refresh-token families: issuing a pair, rotating it (once per token), revoking it.

A login starts a family (one row in PostgreSQL); each refresh replaces the
family's current token id, so a refresh token works once. A retired token that
comes back means someone holds a copy: the family is revoked. Rotation runs in
a short transaction of its own (`rotate_family` says why), so the revocation
persists although the request answers 401 and rolls back.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shop.accounts.repositories import RefreshFamilyRepository
from shop.accounts.security import InvalidToken, decode_token, encode_token
from shop.errors import Forbidden

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from shop.settings import Settings

__all__ = ["IssuedTokens", "ReusedRefreshToken", "TokenService", "rotate_family"]

logger = logging.getLogger("shop.accounts")


class ReusedRefreshToken(InvalidToken):
    """Token is invalid or expired."""


@dataclass(frozen=True)
class IssuedTokens:
    access: str
    refresh: str


class TokenService:
    """Issues access/refresh pairs; refresh tokens rotate within a family stored in PostgreSQL."""

    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        session_maker: async_sessionmaker[AsyncSession],
    ) -> None:
        self.session = session
        self.settings = settings
        self.session_maker = session_maker  # rotation's own transactions (see rotate_family)
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
        rotated = await rotate_family(
            self.session_maker,
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


async def rotate_family(
    session_maker: async_sessionmaker[AsyncSession],
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
    async with session_maker.begin() as session:
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
