"""Why a job failed: the error of each failed attempt, kept beside Procrastinate's queue.

Procrastinate stores a job's status and attempts but not the exception that
failed it; the traceback only reaches the worker's log. Staff retrying a failed
job in the console need to see what went wrong first. `record_failures` is a
worker-wide task middleware (Procrastinate's public ``task_middleware`` hook,
installed by `shop.jobs`): when a task raises, it writes the job id, the
exception's type and message and the end of its traceback to ``job_failures``
in a short transaction of its own, then re-raises so Procrastinate retries or
fails the job exactly as before. A job that is cancelled or aborted is not a
failure. Rows go when their job does (`purge_orphans`, run by the retention
task). Part of the job platform: it knows no domain.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import Base

if TYPE_CHECKING:
    import procrastinate

__all__ = ["JobFailure", "purge_orphans", "record_failures"]

logger = logging.getLogger("shop.jobs")

MAX_ERROR_CHARS = 4000
"""The end of a traceback is where the error is; a runaway message must not bloat the table."""


class JobFailure(Base):
    """One failed attempt of a job."""

    __tablename__ = "job_failures"
    __table_args__ = (Index("ix_job_failures_job_id", "job_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(BigInteger)
    task_name: Mapped[str] = mapped_column(String(255))
    attempt: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


_RECORD = text(
    "INSERT INTO job_failures (job_id, task_name, attempt, error)"
    " VALUES (:job_id, :task_name, :attempt, :error)"
)
_PURGE = text(
    "DELETE FROM job_failures f"
    " WHERE NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE j.id = f.job_id)"
)


def describe(error: BaseException) -> str:
    """``Type: message`` and the traceback's last frames, at most `MAX_ERROR_CHARS`."""
    text_ = "".join(traceback.format_exception(error)).strip()
    return text_ if len(text_) <= MAX_ERROR_CHARS else "…" + text_[-MAX_ERROR_CHARS:]


async def record_failures(
    call_next: Callable[[], Awaitable[Any]],
    context: procrastinate.JobContext,
    worker: Any,
) -> Any:
    """Task middleware: run the task; if it raises, record why, then re-raise."""
    try:
        return await call_next()
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as error:
        await _record(context, error)
        raise


async def _record(context: procrastinate.JobContext, error: Exception) -> None:
    resources = context.additional_context.get("resources")
    job = context.job
    if resources is None or job.id is None:
        return
    try:
        async with resources.session_maker() as session:
            await session.execute(
                _RECORD,
                {
                    "job_id": job.id,
                    "task_name": job.task_name,
                    "attempt": job.attempts + 1,
                    "error": describe(error),
                },
            )
            await session.commit()
    except Exception:  # the database may be what failed: the log still has it
        logger.warning("could not record the failure of job %s", job.id, exc_info=True)


async def purge_orphans(session: Any) -> int:
    """Delete the failures of jobs that no longer exist (removed by retention)."""
    result = await session.execute(_PURGE)
    return int(result.rowcount or 0)
