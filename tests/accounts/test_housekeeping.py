"""Expired refresh families and finished throttle counters are purged."""

from __future__ import annotations

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shop.accounts.models import LoginThrottle, RefreshFamily
from shop.accounts.services import purge_expired
from shop.settings import Settings
from tests.accounts.helpers import register


async def test_purge_deletes_only_expired_families_and_finished_counters(
    client: httpx.AsyncClient,
    db: AsyncSession,
    settings: Settings,
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    await register(client, "live")
    expired = await register(client, "gone")
    await client.post("/api/auth/login/", json={"email": "nobody@example.com", "password": "x"})
    await db.execute(
        text(
            "UPDATE refresh_families SET expires_at = now() - interval '1 second' "
            "WHERE user_id = :id"
        ),
        {"id": expired["user"]["id"]},
    )
    await db.execute(
        text(
            "INSERT INTO login_throttle (key, failures, window_start) "
            "VALUES ('email:old@example.com', 2, now() - interval '1 day')"
        )
    )
    await db.commit()

    purged = await purge_expired(session_maker, settings)

    families = (await db.execute(select(RefreshFamily.user_id))).scalars().all()
    keys = set((await db.execute(select(LoginThrottle.key))).scalars().all())
    assert purged == (1, 1)
    assert families != [] and expired["user"]["id"] not in families
    assert "email:old@example.com" not in keys and "email:nobody@example.com" in keys


async def test_purge_task_is_a_periodic_housekeeping_task() -> None:
    from shop.accounts.tasks import bp, purge_expired_sessions

    assert purge_expired_sessions.queue == "housekeeping"
    # The name carries the namespace shop.jobs registers the blueprint under.
    assert [p.task.name for p in bp.periodic_registry.periodic_tasks.values()] == [
        "accounts:purge_expired_sessions"
    ]
