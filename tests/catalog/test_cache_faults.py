"""The catalogue with memcached killed, frozen or hanging: every request still succeeds, correctly.

Each app here has its own memcached (or a socket that never answers), so
killing it does not disturb other tests. "Within bounds" is asserted as < 2 s
per request: the issue asks for bounded extra latency (one 50 ms timeout at
most, then the open circuit skips memcached); 2 s is generous enough never to
flake and still far below what an unbounded wait would take.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from shop.app import create_app
from shop.settings import Settings
from tests.cache.conftest import Partition, fake_memcached, never_answers
from tests.conftest import make_settings
from tests.support.asgi import serve_in_process
from tests.support.factories import auth_headers, make_product, make_user
from tests.support.servers import Memcached

BOUND = 2.0


async def timed(request: object) -> httpx.Response:
    started = time.monotonic()
    response: httpx.Response = await request  # type: ignore[misc]
    assert time.monotonic() - started < BOUND
    return response


async def exercise(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession, product_id: int
) -> None:
    """Read, write and read again; every answer right and in time."""
    customer = auth_headers(settings, await make_user(db))
    staff = auth_headers(settings, await make_user(db, is_staff=True))
    url = f"/api/products/{product_id}/"

    for _ in range(3):
        listed = await timed(client.get("/api/products/", headers=customer))
        assert listed.status_code == 200 and listed.json()["count"] == 1
        assert (await timed(client.get(url, headers=customer))).json()["price"] == "1.00"

    patched = await timed(client.patch(url, json={"price": "2.00"}, headers=staff))
    assert patched.status_code == 200
    assert (await timed(client.get(url, headers=customer))).json()["price"] == "2.00"
    listed = await timed(client.get("/api/products/", headers=customer))
    assert listed.json()["results"][0]["price"] == "2.00"

    body = {"name": "New", "price": "3.00", "stock": 1, "category": "toys"}
    assert (await timed(client.post("/api/products/", json=body, headers=staff))).status_code == 201
    assert (await timed(client.get("/api/products/", headers=customer))).json()["count"] == 2

    ready = await timed(client.get("/health/ready"))
    assert ready.status_code == 200
    assert ready.json()["checks"]["cache"]["status"] == "degraded"


@pytest.fixture
async def own_memcached() -> AsyncIterator[Memcached]:
    server = Memcached().start()
    yield server
    if server.process is not None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


async def test_every_request_succeeds_after_memcached_is_killed(
    postgres_url: str, db: AsyncSession, own_memcached: Memcached
) -> None:
    settings = make_settings(postgres_url, own_memcached.url)
    product = await make_product(db, price=Decimal("1.00"))
    async with serve_in_process(create_app(settings)) as client:
        warm = auth_headers(settings, await make_user(db))
        assert (await client.get("/api/products/", headers=warm)).status_code == 200

        own_memcached.stop()

        await exercise(client, settings, db, product.id)


async def test_every_request_succeeds_when_memcached_never_answers(
    postgres_url: str, db: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    product = await make_product(db, price=Decimal("1.00"))
    async with fake_memcached(never_answers) as port:
        settings = make_settings(postgres_url, f"127.0.0.1:{port}")
        async with serve_in_process(create_app(settings)) as client:
            await exercise(client, settings, db, product.id)

    warnings = [r for r in caplog.records if r.name == "shop.cache" and r.levelname == "WARNING"]
    assert len(warnings) == 1  # rate-limited, not one per request


async def test_a_write_while_memcached_is_frozen_is_never_hidden_by_stale_entries(
    postgres_url: str, db: AsyncSession, own_memcached: Memcached
) -> None:
    # Frozen (SIGSTOP), memcached keeps its entries but misses the bump; once
    # it wakes, neither this instance nor another may serve the old price.
    settings = make_settings(postgres_url, own_memcached.url)
    product = await make_product(db, price=Decimal("1.00"))
    url = f"/api/products/{product.id}/"
    customer = auth_headers(settings, await make_user(db))
    staff = auth_headers(settings, await make_user(db, is_staff=True))
    async with (
        serve_in_process(create_app(settings)) as writer,
        serve_in_process(create_app(settings)) as other,
    ):
        for instance in (writer, other):
            assert (await instance.get(url, headers=customer)).json()["price"] == "1.00"
        assert own_memcached.process is not None
        own_memcached.process.send_signal(signal.SIGSTOP)

        patched = await timed(writer.patch(url, json={"price": "2.00"}, headers=staff))
        assert patched.status_code == 200

        own_memcached.process.send_signal(signal.SIGCONT)
        assert (await writer.get(url, headers=customer)).json()["price"] == "2.00"
        assert (await other.get(url, headers=customer)).json()["price"] == "2.00"


async def test_a_bump_lost_to_a_partition_is_delivered_before_stale_entries_are_served(
    postgres_url: str, db: AsyncSession, own_memcached: Memcached
) -> None:
    # The writer reaches memcached through a relay we cut; memcached keeps
    # the old entries. The writer never serves them; once the partition
    # heals, the bump it could not deliver reaches memcached for everyone.
    partition = Partition(own_memcached.port)
    await partition.restore()
    product = await make_product(db, price=Decimal("1.00"))
    url = f"/api/products/{product.id}/"
    writer_settings = make_settings(postgres_url, f"127.0.0.1:{partition.port}")
    customer = auth_headers(writer_settings, await make_user(db))
    staff = auth_headers(writer_settings, await make_user(db, is_staff=True))
    async with (
        serve_in_process(create_app(writer_settings)) as writer,
        serve_in_process(create_app(make_settings(postgres_url, own_memcached.url))) as other,
    ):
        for instance in (writer, other):
            assert (await instance.get(url, headers=customer)).json()["price"] == "1.00"
        await partition.cut()

        patched = await timed(writer.patch(url, json={"price": "2.00"}, headers=staff))
        assert patched.status_code == 200
        assert (await timed(writer.get(url, headers=customer))).json()["price"] == "2.00"

        await partition.restore()
        assert (await writer.get(url, headers=customer)).json()["price"] == "2.00"
        # The other instance could reach memcached all along, so it serves the
        # old entry until the writer's retry lands: one circuit window (1 s)
        # plus a retry tick after the partition heals. Without the retry it
        # would be stale for the whole TTL (300 s); 5 s tells the two apart.
        deadline = time.monotonic() + 5
        while (await other.get(url, headers=customer)).json()["price"] != "2.00":
            assert time.monotonic() < deadline, "the lost bump was never delivered"
            await asyncio.sleep(0.1)
        await partition.cut()
