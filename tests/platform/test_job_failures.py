"""A failed job's error is kept for staff (Procrastinate keeps none): each failed attempt is
recorded by the worker's task middleware, and the retention task drops it with its job."""

from __future__ import annotations

import procrastinate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shop.job_failures import purge_orphans
from shop.jobs import bind, defer
from tests.orders.jobs_support import eventually, jobs

failing = procrastinate.Blueprint()


@failing.task(name="explode")
async def explode(order_id: int) -> None:
    raise RuntimeError(f"the printer caught fire on order {order_id}")


bind(failing, "testing")  # a task of the tests only; every attempt fails


async def test_a_failed_jobs_error_is_recorded_with_its_traceback(
    db: AsyncSession, postgres_url: str, worker: None
) -> None:
    job_id = await defer(db, "testing:explode", order_id=42)
    await db.commit()

    async def failed() -> bool:
        return [row["status"] for row in await jobs(postgres_url, "testing:explode")] == ["failed"]

    await eventually(failed, timeout=30)
    rows = (
        await db.execute(
            text("SELECT job_id, task_name, attempt, error FROM job_failures ORDER BY id")
        )
    ).all()

    assert [(r.job_id, r.task_name, r.attempt) for r in rows] == [(job_id, "testing:explode", 1)]
    assert "RuntimeError: the printer caught fire on order 42" in rows[0].error
    assert "in explode" in rows[0].error  # the traceback, not only the message


async def test_a_succeeding_job_records_no_failure(
    db: AsyncSession, postgres_url: str, worker: None
) -> None:
    job_id = await defer(db, "jobs:retry_stalled_jobs", timestamp=0)
    await db.commit()

    async def done() -> bool:
        rows = await jobs(postgres_url, "jobs:retry_stalled_jobs")
        return any(r["id"] == job_id and r["status"] == "succeeded" for r in rows)

    await eventually(done, timeout=30)
    assert await db.scalar(text("SELECT count(*) FROM job_failures")) == 0


async def test_failures_go_with_their_job(db: AsyncSession) -> None:
    kept, removed = (
        await db.execute(
            text(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, attempts)"
                " VALUES ('default', 'testing:explode', '{}', 'failed', 1),"
                " ('default', 'testing:explode', '{}', 'failed', 1) RETURNING id"
            )
        )
    ).scalars()
    for job_id in (kept, removed):
        await db.execute(
            text(
                "INSERT INTO job_failures (job_id, task_name, attempt, error)"
                " VALUES (:id, 'testing:explode', 1, 'RuntimeError: boom')"
            ),
            {"id": job_id},
        )
    await db.execute(text("DELETE FROM procrastinate_jobs WHERE id = :id"), {"id": removed})

    assert await purge_orphans(db) == 1  # what the retention task runs after removing jobs
    await db.commit()
    assert (await db.execute(text("SELECT job_id FROM job_failures"))).scalars().all() == [kept]
