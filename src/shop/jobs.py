"""The job platform: background jobs stored in PostgreSQL, run by `shop worker` processes.

This module knows no domain. How the pieces fit:

* Each domain defines its tasks on a `procrastinate.Blueprint` (``orders/tasks.py``,
  ``accounts/tasks.py``). The composition point, `shop.tasks.bind_tasks` (called by
  `create_app`, ``shop worker`` and ``shop dev``), binds them to the one `app` with `bind`.
* Domains defer by task name (`defer`), inside the caller's SQLAlchemy transaction, so a job
  exists if and only if the change that caused it committed. A name no blueprint bound
  raises instead of queueing the job under the default queue, where no worker of ours
  would look for it. Procrastinate has no asyncpg connector, so `ShopConnector` runs the
  ``defer_jobs`` query itself on a SQLAlchemy session (see ``_compat/procrastinate.py``).
* Workers talk to PostgreSQL through psycopg's pool (`open_worker_app`). Tasks receive
  `JobResources` (settings, engine, cache, http client, and the `CpuPool` a task sends
  its CPU-bound work to) through Procrastinate's ``additional_context`` and open their own
  sessions.
* `run_worker` outlives the database: when PostgreSQL goes away (a restart, a network cut)
  Procrastinate's worker stops; this loop logs, waits with backoff (1 s doubling to 30 s)
  and starts it again, until a signal says stop.
* The platform's own housekeeping (namespace ``jobs``, queue ``housekeeping``): every 5 s
  `retry_stalled_jobs` puts back to ``todo`` the running jobs of a worker that died
  (workers beat every `HEARTBEAT_SECONDS`); hourly `remove_finished_jobs` deletes jobs
  finished more than ``JOB_RETENTION_DAYS`` ago, with their events. Every task is safe to
  run twice, so a job retried after its worker died does no harm.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import procrastinate
import psycopg
import psycopg_pool
from procrastinate import builtin_tasks
from procrastinate import exceptions as pq_exceptions
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from shop._compat.procrastinate import (
    DEFER_JOBS_FUNCTION,
    DEFER_JOBS_QUERY,
    JOB_TO_DEFER_TYPE,
    forget_external_pool,
)
from shop.cpu import CpuPool
from shop.job_failures import purge_orphans, record_failures

if TYPE_CHECKING:
    from shop.cache import Cache
    from shop.settings import Settings

__all__ = [
    "HEARTBEAT_SECONDS",
    "HOUSEKEEPING_QUEUE",
    "JobResources",
    "ShopConnector",
    "app",
    "bind",
    "defer",
    "open_worker_app",
    "resources_of",
    "run_worker",
    "task_job",
]

logger = logging.getLogger("shop.jobs")

HOUSEKEEPING_QUEUE = "housekeeping"
HEARTBEAT_SECONDS = 5.0
"""How often a worker records that it is alive (``procrastinate_workers.last_heartbeat``)."""
FETCH_POLLING_SECONDS = 0.1
"""An idle worker also looks for due jobs this often: a retry scheduled for later is not
announced by NOTIFY, so this bounds how late it starts (a webhook retry 1 s after its
attempt comes within 20 %). The cost is ten indexed lookups a second per idle worker; a
busy worker fetches the next job as soon as a slot frees and does not poll."""
SHUTDOWN_GRACE_SECONDS = 30.0
RECONNECT_MAX_SECONDS = 30.0

_DEFER_ONE = text(
    f"SELECT unnest({DEFER_JOBS_FUNCTION}(ARRAY[ROW("
    ":queue_name, :task_name, :priority, :lock, :queueing_lock, CAST(:args AS jsonb), :scheduled_at"
    f")::{JOB_TO_DEFER_TYPE}])) AS id"
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
        if query != DEFER_JOBS_QUERY:
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
_bound: dict[str, procrastinate.Blueprint] = {}


def bind(blueprint: procrastinate.Blueprint, namespace: str) -> None:
    """Add a blueprint's tasks as ``<namespace>:<name>``; binding the same one again is a no-op."""
    if _bound.get(namespace) is blueprint:
        return
    if namespace in _bound:
        raise ValueError(f"another blueprint is bound as {namespace!r}")
    app.add_tasks_from(blueprint, namespace=namespace)
    _bound[namespace] = blueprint


def task_job(name: str) -> procrastinate.jobs.Job:
    """The job a deferral of the registered task ``name`` would insert (queue, lock, ...).

    Raises `procrastinate.exceptions.TaskNotFound` when no bound blueprint has it.
    """
    job: procrastinate.jobs.Job = app.configure_task(name, allow_unknown=False).job
    return job


async def defer(session: AsyncSession, name: str, **kwargs: Any) -> int:
    """Enqueue the registered task ``name`` in the session's transaction: it commits or rolls
    back with it."""
    deferrer = app.configure_task(name, allow_unknown=False, connection=session)
    job_id: int = await deferrer.defer_async(**kwargs)
    return job_id


@dataclass
class JobResources:
    """What a running task needs; built once per worker process."""

    settings: Settings
    engine: AsyncEngine
    session_maker: async_sessionmaker[AsyncSession]
    cache: Cache
    http: httpx.AsyncClient
    cpu: CpuPool
    """Where a task runs CPU-bound work (`shop.cpu`); inline unless the worker made processes."""


def resources_of(context: procrastinate.JobContext) -> JobResources:
    resources: JobResources = context.additional_context["resources"]
    return resources


@contextlib.asynccontextmanager
async def open_worker_app(
    settings: Settings, cpu: CpuPool | None = None
) -> AsyncIterator[tuple[procrastinate.App, JobResources]]:
    """Open the queue connection and the task resources for a worker (``cpu``: its
    processes for CPU-bound work; without, tasks run that work inline)."""
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
        timeout=10.0,
        # Not as a keyword: Procrastinate adds autocommit=True itself for its LISTEN
        # connection and fails on a duplicate keyword (the worker would stop at once).
        kwargs={"application_name": "shop-worker"},
        configure=_autocommit,
    )
    try:
        async with httpx.AsyncClient(timeout=settings.jobs.webhook_timeout) as http:
            resources = JobResources(
                settings=settings,
                engine=engine,
                session_maker=create_session_maker(engine),
                cache=cache,
                http=http,
                cpu=cpu or CpuPool(),
            )
            await pool.open(wait=True, timeout=10.0)
            try:
                async with app.open_async(pool=pool):
                    yield app, resources
            finally:
                # One worker per process at a time: they share the one `app`.
                forget_external_pool(app.connector)
    finally:
        await pool.close()
        await cache.close()
        await engine.dispose()


async def _autocommit(connection: psycopg.AsyncConnection[Any]) -> None:
    """Every query Procrastinate sends through the pool is one statement (a call of one of
    its SQL functions), atomic on its own. In autocommit it is one round trip; otherwise
    psycopg wraps it in BEGIN and the pool in COMMIT, three round trips for each job's fetch
    and again for its finish.

    Those commits do not wait for the disk either (``synchronous_commit = off``): a job's
    state is bookkeeping, and losing its last fraction of a second to a PostgreSQL crash
    only runs a job again, which every task allows. A fetch that is lost leaves the job to
    be fetched again; a finish that is lost leaves it running under a worker that no longer
    beats, and it is retried as stalled (an invoice finds itself stored; a webhook is sent
    again under the same event id, which receivers deduplicate on). What a task commits
    itself (an invoice, a delivery attempt) still waits for the disk, on its own connection.
    Each job's fetch and finish were two of the four flushes a job waited for (J1)."""
    await connection.set_autocommit(True)
    await connection.execute("SET synchronous_commit = off")


async def run_worker(
    settings: Settings,
    *,
    concurrency: int = 4,
    install_signal_handlers: bool = True,
    warm_up: Callable[[], Awaitable[None]] | None = None,
    cpu_initializer: Callable[[], None] | None = None,
) -> None:
    """Run a worker until SIGINT/SIGTERM (it finishes its current jobs first) or cancellation.

    Losing the database does not end it: Procrastinate's worker stops when its listener,
    heartbeat or fetch fails; it is then started again after a backoff. ``warm_up`` (the
    domains' one-off preparations, given by the composition point) runs once before the
    worker takes its first job, so that job does not wait for it; ``cpu_initializer`` runs
    once in each of the worker's ``JOB_CPU_PROCESSES`` processes (`shop.cpu`), which live as
    long as the worker, across reconnections.
    """
    cpu = CpuPool(settings.jobs.cpu_processes, cpu_initializer)
    try:
        await cpu.start()
        await _run_until_stopped(settings, concurrency, install_signal_handlers, warm_up, cpu)
    finally:
        await asyncio.to_thread(cpu.close)


async def _run_until_stopped(
    settings: Settings,
    concurrency: int,
    install_signal_handlers: bool,
    warm_up: Callable[[], Awaitable[None]] | None,
    cpu: CpuPool,
) -> None:
    if warm_up is not None:
        await warm_up()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    current: asyncio.Task[None] | None = None

    def on_signal() -> None:
        logger.info("worker: stop requested; finishing the current jobs")
        stop.set()
        if current is not None:
            current.cancel()

    if install_signal_handlers:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
    delay = 1.0
    try:
        while not stop.is_set():
            connected = asyncio.Event()
            current = asyncio.create_task(_run_once(settings, concurrency, connected, cpu))
            try:
                await current
                problem = "the worker stopped (see the error above)"
            except asyncio.CancelledError:
                if stop.is_set():
                    return
                raise
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if connected.is_set():
                delay = 1.0
            if stop.is_set():
                return
            wait = min(delay, RECONNECT_MAX_SECONDS) * random.uniform(0.8, 1.2)  # noqa: S311
            logger.warning("worker: %s; reconnecting in %.1f s", problem, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)
    finally:
        if install_signal_handlers:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


async def _run_once(
    settings: Settings, concurrency: int, connected: asyncio.Event, cpu: CpuPool
) -> None:
    async with open_worker_app(settings, cpu) as (job_app, resources):
        connected.set()
        logger.info("worker: connected; running up to %d jobs at once", concurrency)
        await job_app.run_worker_async(
            concurrency=concurrency,
            additional_context={"resources": resources},
            install_signal_handlers=False,
            shutdown_graceful_timeout=SHUTDOWN_GRACE_SECONDS,
            fetch_job_polling_interval=FETCH_POLLING_SECONDS,
            update_heartbeat_interval=HEARTBEAT_SECONDS,
            stalled_worker_timeout=float(settings.jobs.stalled_after_seconds),
            task_middleware=[record_failures],  # keeps each failure's error for staff
        )


# --- the platform's housekeeping ---------------------------------------------------------------

housekeeping = procrastinate.Blueprint()


def stale_heartbeat_seconds(stalled_after_seconds: int) -> float:
    """Heartbeat age after which a worker counts as dead.

    The check runs every 5 s (`HEARTBEAT_SECONDS`), so a job is taken over at most that long
    after its worker's beat got this old, which keeps the takeover within
    ``JOB_STALLED_AFTER_SECONDS`` of the last beat. A live worker beats every 5 s, so with the
    setting at 20 s or more it is never mistaken for a dead one unless its event loop stalls
    for three beats.
    """
    return stalled_after_seconds - HEARTBEAT_SECONDS


@housekeeping.periodic(cron="* * * * * */5")
@housekeeping.task(name="retry_stalled_jobs", pass_context=True, queue=HOUSEKEEPING_QUEUE)
async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Requeue jobs whose worker stopped sending heartbeats (it crashed or was killed)."""
    threshold = stale_heartbeat_seconds(resources_of(context).settings.jobs.stalled_after_seconds)
    manager = context.app.job_manager
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=threshold):
        if job.id == context.job.id:
            continue
        logger.warning(
            "retrying stalled job %s (%s) of worker %s", job.id, job.task_name, job.worker_id
        )
        await manager.retry_job(job)
    # This task runs every few seconds: keep only the last hour of its own finished runs.
    await manager.delete_old_jobs(nb_hours=1, queue=HOUSEKEEPING_QUEUE)


@housekeeping.periodic(cron="17 * * * *")
@housekeeping.task(name="remove_finished_jobs", pass_context=True, queue=HOUSEKEEPING_QUEUE)
async def remove_finished_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Hourly: delete jobs finished (any final state) ``JOB_RETENTION_DAYS`` ago, and their events.

    The jobs' effects stay: invoices and webhook events are rows of their own.
    """
    days = resources_of(context).settings.jobs.retention_days
    await builtin_tasks.remove_old_jobs(
        context,
        max_hours=days * 24,
        remove_failed=True,
        remove_cancelled=True,
        remove_aborted=True,
    )
    async with resources_of(context).session_maker() as session:
        await purge_orphans(session)  # the failures of the jobs just removed
        await session.commit()


bind(housekeeping, "jobs")
