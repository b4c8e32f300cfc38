"""The Procrastinate app: background jobs stored in PostgreSQL, run by `shop worker` processes.

How the pieces fit:

* Each domain defines its tasks on a `procrastinate.Blueprint` (``orders/tasks.py``);
  this module adds them to the one `app`.
* Deferring happens inside the request's SQLAlchemy transaction (`defer`), so a
  job exists if and only if the change that caused it committed. Procrastinate
  has no asyncpg connector, so `ShopConnector` teaches the psycopg connector to
  run its ``defer_jobs`` query on a SQLAlchemy session when one is passed as
  the external connection (Procrastinate's ``configure(connection=...)``).
* Workers talk to PostgreSQL through psycopg's pool (`open_worker_app`). Tasks
  receive `JobResources` (settings, engine, cache, http client) through
  Procrastinate's ``additional_context`` and open their own sessions.
* Every task is safe to run twice; a job whose worker died is retried once its
  heartbeat is older than ``JOB_STALLED_AFTER_SECONDS`` (`retry_stalled_jobs`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import procrastinate
import psycopg_pool
from procrastinate import exceptions as pq_exceptions
from procrastinate import sql as pq_sql
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from shop.accounts import tasks as accounts_tasks
from shop.orders import tasks as order_tasks

if TYPE_CHECKING:
    from shop.cache import Cache
    from shop.settings import Settings

__all__ = ["JobResources", "ShopConnector", "app", "defer", "open_worker_app", "resources_of"]

logger = logging.getLogger("shop.jobs")

_DEFER_ONE = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW("
    ":queue_name, :task_name, :priority, :lock, :queueing_lock, CAST(:args AS jsonb), :scheduled_at"
    ")::procrastinate_job_to_defer_v1])) AS id"
)


class ShopConnector(procrastinate.PsycopgConnector):
    """Psycopg connector that can also defer on a SQLAlchemy session or connection."""

    async def execute_query_all_async_with_connection(
        self, connection: Any, query: Any, **arguments: Any
    ) -> list[dict[str, Any]]:
        if not isinstance(connection, AsyncSession | AsyncConnection):
            rows: list[dict[str, Any]] = await super().execute_query_all_async_with_connection(
                connection, query, **arguments
            )
            return rows
        if query != pq_sql.queries["defer_jobs"]:
            raise pq_exceptions.ConnectorException("only deferring runs on a SQLAlchemy session")
        ids = []
        for job in arguments["jobs"]:
            result = await connection.execute(
                _DEFER_ONE,
                {
                    "queue_name": job.queue_name,
                    "task_name": job.task_name,
                    "priority": job.priority,
                    "lock": job.lock,
                    "queueing_lock": job.queueing_lock,
                    "args": json.dumps(job.args),
                    "scheduled_at": job.scheduled_at,
                },
            )
            ids.append({"id": result.scalar_one()})
        return ids


app = procrastinate.App(connector=ShopConnector(), import_paths=[])
app.add_tasks_from(order_tasks.bp, namespace="orders")
app.add_tasks_from(accounts_tasks.bp, namespace="accounts")


async def defer(
    session: AsyncSession, task: procrastinate.tasks.Task[Any, Any, Any], **kwargs: Any
) -> int:
    """Enqueue ``task`` in the session's transaction: it commits or rolls back with it."""
    job_id: int = await task.configure(connection=session).defer_async(**kwargs)
    return job_id


@dataclass
class JobResources:
    """What a running task needs; built once per worker process."""

    settings: Settings
    engine: AsyncEngine
    session_maker: async_sessionmaker[AsyncSession]
    cache: Cache
    http: httpx.AsyncClient


def resources_of(context: procrastinate.JobContext) -> JobResources:
    resources: JobResources = context.additional_context["resources"]
    return resources


@contextlib.asynccontextmanager
async def open_worker_app(
    settings: Settings,
) -> AsyncIterator[tuple[procrastinate.App, JobResources]]:
    """Open the queue connection and the task resources for a worker."""
    from shop.cache import create_cache
    from shop.db import create_engine, create_session_maker
    from shop.identity import read_cache_key_prefix

    engine = create_engine(settings.database)
    cache = create_cache(settings.cache, key_prefix=lambda: read_cache_key_prefix(engine))
    pool = psycopg_pool.AsyncConnectionPool(
        settings.database.libpq_url,
        min_size=1,
        max_size=4,
        open=False,
        # No autocommit here: Procrastinate adds autocommit=True itself for its LISTEN
        # connection and fails on a duplicate keyword (the worker would stop at once).
        kwargs={"application_name": "shop-worker"},
    )
    async with httpx.AsyncClient(timeout=settings.jobs.webhook_timeout) as http:
        resources = JobResources(
            settings=settings,
            engine=engine,
            session_maker=create_session_maker(engine),
            cache=cache,
            http=http,
        )
        await pool.open(wait=True)
        try:
            async with app.open_async(pool=pool):
                yield app, resources
        finally:
            await pool.close()
            # Procrastinate keeps an external pool after closing (it is not its to close), so
            # without this the next worker in this process (tests, dev reloads) would get the
            # closed pool. One worker per process at a time: they share the one `app`.
            app.connector._async_pool = None  # type: ignore[attr-defined]
            await cache.close()
            await engine.dispose()


async def run_worker(
    settings: Settings, *, concurrency: int = 4, install_signal_handlers: bool = True
) -> None:
    """Run a worker until it is told to stop (SIGINT/SIGTERM: it finishes its current jobs first)."""
    async with open_worker_app(settings) as (job_app, resources):
        await job_app.run_worker_async(
            concurrency=concurrency,
            additional_context={"resources": resources},
            install_signal_handlers=install_signal_handlers,
            shutdown_graceful_timeout=30,
            update_heartbeat_interval=5.0,
            stalled_worker_timeout=float(settings.jobs.stalled_after_seconds),
        )
