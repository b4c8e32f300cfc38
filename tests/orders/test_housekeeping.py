"""Idempotency-Key records are purged once their 24 h retention is over, by a real worker."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shop.jobs import defer
from shop.orders.models import IdempotencyRecord
from shop.settings import Settings
from tests.orders.jobs_support import eventually, running_worker
from tests.support.factories import make_user


async def test_purge_deletes_only_expired_idempotency_records(
    db: AsyncSession, settings: Settings
) -> None:
    user = await make_user(db)
    await db.execute(
        text(
            "INSERT INTO idempotency_records (user_id, key, request_hash, created_at) VALUES "
            "(:user, 'old', 'h', now() - interval '25 hours'), (:user, 'fresh', 'h', now())"
        ),
        {"user": user.id},
    )
    await defer(db, "orders:purge_idempotency_records", timestamp=0)
    await db.commit()

    async def only_fresh_left() -> list[str] | None:
        db.expire_all()
        keys = list((await db.execute(select(IdempotencyRecord.key))).scalars())
        await db.rollback()
        return keys if keys == ["fresh"] else None

    async with running_worker(settings):
        assert await eventually(only_fresh_left) == ["fresh"]
