"""Fixtures shared by every test: real PostgreSQL, real memcached, the app, a real worker.

Layout of a test run:
  session: one migrated database, one memcached, one app (lifespan entered
           once) and an httpx client talking to it over ASGI.
  each test: domain tables truncated and memcached flushed first (autouse),
             so tests never see each other's rows or cache entries.

Use ``worker`` when a test needs jobs to run: it starts a Procrastinate
worker in this event loop, against the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shop.app import create_app
from shop.cache import Cache
from shop.migrations import upgrade_async
from shop.settings import Settings
from shop.tasks import bind_tasks
from tests.support.asgi import serve_in_process
from tests.support.servers import Memcached, postgres_server_url, with_database
from tests.support.sql import SqlCounter, count_statements

bind_tasks()  # the composition point, as create_app and `shop worker` do

DOMAIN_TABLES = (
    "console_audit, console_sessions, job_failures, "
    "webhook_attempts, webhook_events, invoices, invoice_counters, idempotency_records, "
    "order_status_changes, order_items, orders, products, refresh_families, login_throttle, users, "
    "procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs"
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated database for this test session (libpq URL)."""
    server_url, handle = postgres_server_url()
    name = f"shop_test_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"cannot reach PostgreSQL at DATABASE_URL ({exc}); start it or unset DATABASE_URL"
        )
    url = with_database(server_url, name)
    asyncio.run(upgrade_async_sync(url))
    yield url
    asyncio.run(drop())
    del handle


async def upgrade_async_sync(url: str) -> None:
    await upgrade_async("postgresql+asyncpg://" + url.split("://", 1)[1])


@pytest.fixture(scope="session")
def memcached() -> Iterator[Memcached | str]:
    external = os.environ.get("MEMCACHED_URL")
    if external:
        yield external
        return
    server = Memcached().start()
    yield server
    server.stop()


def memcached_url(memcached: Memcached | str) -> str:
    return memcached if isinstance(memcached, str) else memcached.url


def make_settings(postgres_url: str, memcached: str | None, **overrides: str) -> Settings:
    env = {
        "SECRET_KEY": "test-secret-key-that-is-long-enough",
        "DATABASE_URL": postgres_url,
        "ALLOWED_HOSTS": "*",
        "JSON_LOGS": "false",
        "LOGIN_ATTEMPTS": "5",
    }
    if memcached:
        env["MEMCACHED_URL"] = memcached
    env.update(overrides)
    return Settings.from_env(env)


@pytest.fixture(scope="session")
def settings(postgres_url: str, memcached: Memcached | str) -> Settings:
    return make_settings(postgres_url, memcached_url(memcached))


@pytest.fixture(scope="session")
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_process(app) as c:
        yield c


@pytest.fixture(scope="session")
def engine(app: Litestar, client: httpx.AsyncClient) -> AsyncEngine:
    engine: AsyncEngine = app.state.engine
    return engine


@pytest.fixture(scope="session")
def session_maker(app: Litestar, client: httpx.AsyncClient) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = app.state.session_maker
    return maker


@pytest.fixture
async def db(session_maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for arranging and asserting; commit what you arrange."""
    async with session_maker() as session:
        yield session


@pytest.fixture(autouse=True)
async def _clean_state(request: pytest.FixtureRequest) -> None:
    if "postgres_url" not in request.fixturenames:
        return
    postgres_url: str = request.getfixturevalue("postgres_url")
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f"TRUNCATE {DOMAIN_TABLES} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    if "app" in request.fixturenames:
        app: Litestar = request.getfixturevalue("app")
        cache: Cache | None = getattr(app.state, "cache", None)
        if cache is not None:
            await cache.flush()


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    """A real Procrastinate worker running in this event loop for the duration of the test."""
    from shop.jobs import run_worker

    task = asyncio.create_task(run_worker(settings, concurrency=4, install_signal_handlers=False))
    await asyncio.sleep(0.3)
    if task.done():
        task.result()
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def pytest_collection_modifyitems(items: list[Any]) -> None:
    # Every test shares the session event loop (the app and its pools live there).
    for item in items:
        if item.get_closest_marker("asyncio") is None and asyncio.iscoroutinefunction(
            getattr(item, "function", None)
        ):
            item.add_marker(pytest.mark.asyncio(loop_scope="session"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: a missing service must not pass silently."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter:
            reporter.write_line(
                f"CI: {skipped} test(s) skipped; skips are failures in CI", red=True
            )


@pytest.fixture
async def live_server(settings: Settings) -> AsyncIterator[Any]:
    """A second app instance served by uvicorn on a real port (same database and memcached)."""
    from tests.support.live import serve_live

    async with serve_live(create_app(settings)) as server:
        yield server


@pytest.fixture
def sql(app: Litestar) -> Iterator[SqlCounter]:
    """Every SQL statement the app's engine sends while the test runs."""
    with count_statements(app.state.engine) as counter:
        yield counter
