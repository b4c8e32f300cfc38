"""Queries of the accounts domain: users, refresh-token families, login throttling."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Interval, and_, case, delete, func, literal, or_, select, type_coerce, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import LoginThrottle, RefreshFamily, User

__all__ = ["RefreshFamilyRepository", "ThrottleRepository", "UserRepository"]


class UserRepository(SQLAlchemyAsyncRepository[User]):
    model_type = User

    async def get_by_id(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        result = await self.session.execute(
            select(User).where(func.lower(User.email) == email.lower())
        )
        return result.scalar_one_or_none()

    async def email_taken(self, email: str) -> bool:
        result = await self.session.execute(
            select(User.id).where(func.lower(User.email) == email.lower())
        )
        return result.first() is not None

    async def username_taken(self, username: str, *, excluding: int | None = None) -> bool:
        query = select(User.id).where(func.lower(User.username) == username.lower())
        if excluding is not None:
            query = query.where(User.id != excluding)
        return (await self.session.execute(query)).first() is not None

    async def staff_page(
        self,
        *,
        search: str | None,
        is_staff: bool | None,
        is_active: bool | None,
        joined_from: datetime | None,
        joined_to: datetime | None,
        limit: int,
        offset: int,
    ) -> tuple[list[User], int]:
        """Users matching the filters (search: e-mail or username contains), newest first."""
        conditions = []
        if search:
            conditions.append(
                or_(
                    User.email.icontains(search, autoescape=True),
                    User.username.icontains(search, autoescape=True),
                )
            )
        if is_staff is not None:
            conditions.append(User.is_staff.is_(is_staff))
        if is_active is not None:
            conditions.append(User.is_active.is_(is_active))
        if joined_from is not None:
            conditions.append(User.date_joined >= joined_from)
        if joined_to is not None:
            conditions.append(User.date_joined <= joined_to)
        rows = (
            await self.session.execute(
                select(User, func.count().over())
                .where(*conditions)
                .order_by(User.date_joined.desc(), User.id.desc())
                .limit(limit)
                .offset(offset)
            )
        ).all()
        if rows:
            return [row[0] for row in rows], int(rows[0][1])
        count = select(func.count()).select_from(User).where(*conditions)
        return [], int(await self.session.scalar(count) or 0)

    async def names_of(self, user_ids: list[int]) -> dict[int, str]:
        """``{id: username}`` of these users (who moved an order, who changed a product)."""
        if not user_ids:
            return {}
        rows = await self.session.execute(
            select(User.id, User.username).where(User.id.in_(user_ids))
        )
        return {row.id: row.username for row in rows}


class RefreshFamilyRepository(SQLAlchemyAsyncRepository[RefreshFamily]):
    model_type = RefreshFamily

    async def rotate(
        self,
        family_id: uuid.UUID,
        *,
        user_id: int,
        presented_jti: uuid.UUID,
        new_jti: uuid.UUID,
        expires_at: datetime,
    ) -> bool:
        """Swap the family's current token for a new one, if ``presented_jti`` is still current.

        One conditional UPDATE: of two requests racing with the same token,
        the second waits for the first's row lock, re-reads the row, no longer
        matches, and is treated as reuse.
        """
        result = await self.session.execute(
            update(RefreshFamily)
            .where(
                RefreshFamily.id == family_id,
                RefreshFamily.user_id == user_id,
                RefreshFamily.current_jti == presented_jti,
                RefreshFamily.revoked_at.is_(None),
                RefreshFamily.expires_at > func.now(),
                select(User.id).where(User.id == user_id, User.is_active).exists(),
            )
            .values(current_jti=new_jti, expires_at=expires_at)
            .returning(RefreshFamily.id)
        )
        return result.first() is not None

    async def get_for_update(self, family_id: uuid.UUID) -> RefreshFamily | None:
        return await self.session.get(RefreshFamily, family_id, with_for_update=True)

    async def revoke(self, family_id: uuid.UUID, *, user_id: int | None = None) -> None:
        query = update(RefreshFamily).where(
            RefreshFamily.id == family_id, RefreshFamily.revoked_at.is_(None)
        )
        if user_id is not None:
            query = query.where(RefreshFamily.user_id == user_id)
        await self.session.execute(query.values(revoked_at=func.now()))

    async def revoke_all_of(self, user_id: int, *, keep: uuid.UUID | None = None) -> None:
        """Revoke every live family of the user, except ``keep`` (the caller's own session)."""
        query = update(RefreshFamily).where(
            RefreshFamily.user_id == user_id, RefreshFamily.revoked_at.is_(None)
        )
        if keep is not None:
            query = query.where(RefreshFamily.id != keep)
        await self.session.execute(query.values(revoked_at=func.now()))

    async def delete_expired(self, *, user_id: int | None = None) -> int:
        """Drop families whose tokens have all expired (revoked or not)."""
        query = delete(RefreshFamily).where(RefreshFamily.expires_at <= func.now())
        if user_id is not None:
            query = query.where(RefreshFamily.user_id == user_id)
        result = await self.session.execute(query)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


class ThrottleRepository:
    """Counters in ``login_throttle``: one row per key, a fixed window, a block at the limit."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def seconds_blocked(self, keys: list[str]) -> int:
        """Seconds until every key in ``keys`` is unblocked; 0 when none is blocked."""
        remaining: timedelta | None = await self.session.scalar(
            select(
                type_coerce(func.max(LoginThrottle.blocked_until) - func.now(), Interval())
            ).where(LoginThrottle.key.in_(keys), LoginThrottle.blocked_until > func.now())
        )
        return _ceil_seconds(remaining)

    async def count(self, key: str, *, limit: int, window_seconds: int) -> int:
        """Count one event for ``key``; returns the seconds it is now blocked for (0: not blocked).

        The window restarts with the first event after it ended; reaching
        ``limit`` events within one window blocks the key for a full window.
        """
        table = LoginThrottle.__table__.c
        window = literal(timedelta(seconds=window_seconds), Interval())
        expired = table.window_start <= func.now() - window
        failures = case((expired, 1), else_=table.failures + 1)
        stmt = insert(LoginThrottle).values(
            key=key,
            failures=1,
            window_start=func.now(),
            blocked_until=case((literal(1) >= limit, func.now() + window), else_=None),
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[table.key],
            set_={
                "failures": failures,
                "window_start": case((expired, func.now()), else_=table.window_start),
                "blocked_until": case(
                    (failures >= limit, func.now() + window),
                    (expired, None),
                    else_=table.blocked_until,
                ),
            },
        ).returning(func.greatest(LoginThrottle.blocked_until, func.now()) - func.now())
        return _ceil_seconds(await self.session.scalar(upsert))

    async def clear(self, key: str) -> None:
        await self.session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))

    async def delete_stale(self, *, window_seconds: int) -> int:
        """Drop counters whose window and block are both over (they would restart at 1 anyway)."""
        window = literal(timedelta(seconds=window_seconds), Interval())
        result = await self.session.execute(
            delete(LoginThrottle).where(
                and_(
                    LoginThrottle.window_start <= func.now() - window,
                    or_(
                        LoginThrottle.blocked_until.is_(None),
                        LoginThrottle.blocked_until <= func.now(),
                    ),
                )
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _ceil_seconds(remaining: timedelta | None) -> int:
    if remaining is None or remaining <= timedelta(0):
        return 0
    return max(1, math.ceil(remaining.total_seconds()))
