"""The job queue as staff see it: counts by status, failed jobs, and retrying one.

Procrastinate keeps its jobs in ``procrastinate_jobs`` and their history in
``procrastinate_events``; it offers no asyncio-and-SQLAlchemy API for these
staff views, so they are read here with plain statements on the request's
session. A retry calls Procrastinate's own SQL function (`RETRY_JOB_FUNCTION`, the
one its ``JobManager.retry_job_by_id_async`` runs; see `shop._compat.procrastinate`),
in the request's transaction like every other console change. Procrastinate stores no error
text for a failed job; `shop.job_failures` records each failed attempt's error,
and the list shows the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shop._compat.procrastinate import RETRY_JOB_FUNCTION
from shop.errors import Conflict

__all__ = ["FailedJob", "JobNotRetryable", "failed_jobs", "retry_failed", "status_counts"]


class JobNotRetryable(Conflict):
    """Only a failed job can be retried."""


@dataclass(frozen=True, slots=True)
class FailedJob:
    id: int
    task_name: str
    args: dict[str, Any]
    attempts: int
    failed_at: datetime | None
    error: str | None
    """The last failed attempt's error (`shop.job_failures`); None if none was recorded."""


_COUNTS = text("SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs GROUP BY 1")
_FAILED = text(
    "SELECT j.id, j.task_name, j.args, j.attempts,"
    " (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id) AS failed_at,"
    " (SELECT f.error FROM job_failures f WHERE f.job_id = j.id ORDER BY f.id DESC LIMIT 1)"
    " AS error"
    " FROM procrastinate_jobs j WHERE j.status = 'failed'"
    " ORDER BY j.id DESC LIMIT :limit OFFSET :offset"
)
_FAILED_TOTAL = text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'")
_LOCK_FAILED = text(
    "SELECT id FROM procrastinate_jobs WHERE id = :job_id AND status = 'failed' FOR UPDATE"
)
# job_id, retry_at, new_priority, new_queue_name, new_lock (RETRY_JOB_ARGUMENTS)
_RETRY = text(f"SELECT {RETRY_JOB_FUNCTION}(:job_id, now(), NULL, NULL, NULL)")


async def status_counts(session: AsyncSession) -> dict[str, int]:
    """Jobs per status: todo (waiting), doing (running), failed, succeeded, ..."""
    rows = await session.execute(_COUNTS)
    return {row.status: int(row.n) for row in rows}


async def failed_jobs(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[FailedJob], int]:
    rows = await session.execute(_FAILED, {"limit": limit, "offset": offset})
    total = await session.scalar(_FAILED_TOTAL)
    return [
        FailedJob(
            id=row.id,
            task_name=row.task_name,
            args=dict(row.args or {}),
            attempts=row.attempts,
            failed_at=row.failed_at,
            error=row.error,
        )
        for row in rows
    ], int(total or 0)


async def retry_failed(session: AsyncSession, job_id: int) -> None:
    """Put a failed job back in the queue to run now (a worker picks it up at its next poll)."""
    if (await session.execute(_LOCK_FAILED, {"job_id": job_id})).first() is None:
        raise JobNotRetryable()
    await session.execute(_RETRY, {"job_id": job_id})
