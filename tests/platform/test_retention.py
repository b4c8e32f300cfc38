"""Finished jobs and old webhook attempts are deleted by the periodic housekeeping tasks,
run here by a real worker; invoices and webhook events are kept."""

from __future__ import annotations

import json
import uuid

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.jobs import defer
from shop.orders.models import Invoice, OrderStatus, WebhookAttempt, WebhookEvent
from shop.settings import Settings
from tests.orders.jobs_support import eventually, jobs, make_order, running_worker
from tests.support.factories import make_user


async def _age(postgres_url: str, sql: str, *args: object) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute(sql, *args)
    finally:
        await connection.close()


async def test_finished_jobs_past_retention_go_with_their_events_and_recent_ones_stay(
    db: AsyncSession, settings: Settings, postgres_url: str
) -> None:
    customer = await make_user(db)
    old_order = await make_order(db, customer)
    recent_order = await make_order(db, customer)
    async with running_worker(settings):  # both invoice jobs run and succeed

        async def invoices_done() -> bool:
            rows = await jobs(postgres_url, "orders:generate_invoice")
            return len(rows) == 2 and all(row["status"] == "succeeded" for row in rows)

        await eventually(invoices_done, timeout=180)
    old_job = next(
        row["id"]
        for row in await jobs(postgres_url, "orders:generate_invoice")
        if json.loads(row["args"])["order_id"] == old_order.id
    )
    # Finished eight days ago (JOB_RETENTION_DAYS is 7 by default).
    await _age(
        postgres_url,
        "UPDATE procrastinate_events SET at = now() - interval '8 days' WHERE job_id = $1",
        old_job,
    )
    # A shipped-order event with one attempt 91 days old and one from today.
    event = WebhookEvent(
        event_id=uuid.uuid4(),
        order_id=recent_order.id,
        kind="order.shipped",
        payload={"order_id": recent_order.id, "status": OrderStatus.SHIPPED},
        outcome="delivered",
    )
    db.add(event)
    await db.flush()
    db.add_all(
        WebhookAttempt(event_id=event.event_id, attempt=n, duration_ms=1.0, outcome="failed")
        for n in (1, 2)
    )
    await db.commit()
    await _age(
        postgres_url,
        "UPDATE webhook_attempts SET at = now() - interval '91 days' WHERE attempt = 1",
    )

    ours = {
        await defer(db, "jobs:remove_finished_jobs", timestamp=0),
        await defer(db, "orders:purge_webhook_attempts", timestamp=0),
    }
    await db.commit()
    async with running_worker(settings):

        async def purged() -> bool:
            # Only the two jobs deferred here: the worker's periodic deferrer may queue the
            # same tasks when the test runs within minutes after their hourly minute.
            rows = await jobs(postgres_url, "jobs:remove_finished_jobs")
            rows += await jobs(postgres_url, "orders:purge_webhook_attempts")
            statuses = {r["id"]: r["status"] for r in rows if r["id"] in ours}
            return len(statuses) == 2 and set(statuses.values()) == {"succeeded"}

        await eventually(purged, timeout=180)

    remaining = {
        json.loads(row["args"])["order_id"]
        for row in await jobs(postgres_url, "orders:generate_invoice")
    }
    connection = await asyncpg.connect(postgres_url)
    try:
        orphan_events = await connection.fetchval(
            "SELECT count(*) FROM procrastinate_events WHERE job_id = $1", old_job
        )
    finally:
        await connection.close()
    attempts = (await db.scalars(select(WebhookAttempt.attempt))).all()
    assert remaining == {recent_order.id}
    assert orphan_events == 0
    assert attempts == [2]
    # Invoices are legal documents, and the event keeps the delivery's outcome.
    assert await db.scalar(select(func.count()).select_from(Invoice)) == 2
    assert await db.scalar(select(func.count()).select_from(WebhookEvent)) == 1
