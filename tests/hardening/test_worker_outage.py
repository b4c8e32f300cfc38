"""`shop worker` outlives PostgreSQL restarts, and /health/ready counts only live workers.

The worker runs as a real process against a PostgreSQL cluster this test owns, which it
stops and starts under it (never the shared server).
"""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import pytest
from sqlalchemy import select

from shop.app import create_app
from shop.db import create_engine, create_session_maker
from shop.migrations import upgrade_async
from shop.orders.models import Invoice
from tests.conftest import make_settings
from tests.hardening.conftest import Processes, shop_env
from tests.hardening.pg import ThrowawayPostgres
from tests.orders.jobs_support import eventually, make_order
from tests.support.asgi import serve_in_process
from tests.support.factories import make_user


@pytest.fixture
async def pg():
    server = ThrowawayPostgres().init()
    await asyncio.to_thread(server.start)
    await upgrade_async("postgresql+asyncpg://" + server.url.split("://", 1)[1])
    yield server
    await asyncio.to_thread(server.destroy)


async def _live_workers(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM procrastinate_workers "
            "WHERE last_heartbeat > now() - interval '15 seconds'"
        )
        return count
    finally:
        await connection.close()


async def test_worker_survives_a_database_restart_and_runs_jobs_deferred_after_it(
    pg: ThrowawayPostgres, processes: Processes
) -> None:
    settings = make_settings(pg.url, None)
    worker = processes.worker(shop_env(pg.url, None, JSON_LOGS="false"))
    await eventually(lambda: _live_workers(pg.url), timeout=30)

    await asyncio.to_thread(pg.stop)
    await asyncio.sleep(8)  # long enough for every side task of the worker to notice
    alive_during_outage = worker.process.poll() is None
    await asyncio.to_thread(pg.start)

    engine = create_engine(settings.database)
    try:
        async with create_session_maker(engine)() as db:
            order = await make_order(db, await make_user(db))  # with its invoice job
            order_id = order.id  # the rollbacks below expire the instance

            async def invoice_pdf() -> bytes | None:
                pdf: bytes | None = await db.scalar(
                    select(Invoice.pdf).where(Invoice.order_id == order_id)
                )
                await db.rollback()  # a fresh snapshot on the next poll
                return pdf

            stored = await eventually(invoice_pdf, timeout=90)
    finally:
        await engine.dispose()

    assert alive_during_outage, worker.output()
    assert worker.process.poll() is None, worker.output()
    assert stored.startswith(b"%PDF")
    assert "reconnecting" in worker.output()


async def test_ready_stops_counting_a_killed_worker_within_30_seconds(
    pg: ThrowawayPostgres, processes: Processes
) -> None:
    worker = processes.worker(shop_env(pg.url, None, JSON_LOGS="false"))
    await eventually(lambda: _live_workers(pg.url), timeout=30)
    async with serve_in_process(create_app(make_settings(pg.url, None))) as client:
        before = (await client.get("/health/ready")).json()["checks"]["queue"]["detail"]
        worker.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(worker.process.wait)
        killed_at = time.monotonic()

        async def forgotten() -> bool:
            body = (await client.get("/health/ready")).json()
            return bool(body["checks"]["queue"]["detail"] == "0 active worker(s)")

        await eventually(forgotten, timeout=60)
        forgotten_after = time.monotonic() - killed_at

    assert before == "1 active worker(s)"
    assert forgotten_after < 30
