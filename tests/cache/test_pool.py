"""A pool of three real memcached servers: keys spread, a dead server costs only its keys,
and a server that comes back (restarted empty, or with its old data) never serves stale data."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import httpx
import pytest
from litestar import Litestar

from shop.app import create_app
from shop.cache import PRODUCTS, MemcachedCache
from shop.cache.base import make_key, version_key
from tests.cache.conftest import Partition
from tests.conftest import make_settings
from tests.support.asgi import serve_in_process
from tests.support.factories import auth_headers, make_product, make_user
from tests.support.servers import Memcached
from tests.support.sql import count_statements


@pytest.fixture
def three_memcached() -> Iterator[list[Memcached]]:
    servers = [Memcached().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


def pool_of(ports: list[int], **kwargs: float) -> MemcachedCache:
    return MemcachedCache.of([("127.0.0.1", port) for port in ports], 0.05, **kwargs)  # type: ignore[arg-type]


async def get_each(cache: MemcachedCache, keys: list[str]) -> list[bytes | None]:
    return [await cache.get(key) for key in keys]


def owner_port(cache: MemcachedCache, key: str) -> int:
    return cache._ring.owner(key).port


async def test_keys_spread_over_every_server_and_each_lives_on_one(
    three_memcached: list[Memcached],
) -> None:
    cache = pool_of([s.port for s in three_memcached])
    keys = [f"user_{n}" for n in range(300)]
    for key in keys:
        await cache.set(key, key.encode(), 60)

    alone = [pool_of([s.port]) for s in three_memcached]
    held = [sum(v is not None for v in await get_each(one, keys)) for one in alone]

    assert sum(held) == 300  # each key on exactly one server
    assert min(held) > 50  # and every server holds a fair share
    assert await get_each(cache, keys) == [key.encode() for key in keys]
    for one in [cache, *alone]:
        await one.close()


async def test_a_dead_server_costs_only_its_keys_and_its_counters_stay_readable(
    three_memcached: list[Memcached],
) -> None:
    cache = pool_of([s.port for s in three_memcached], circuit_seconds=60)
    keys = [f"user_{n}" for n in range(60)]
    for key in keys:
        await cache.set(key, b"x", 60)
    first = await cache.lookup(PRODUCTS, "q")
    counter_home = cache._ring.replicas(version_key(PRODUCTS))[0].port
    dead = next(s for s in three_memcached if s.port == counter_home)

    dead.stop()
    values = await get_each(cache, keys)
    later = await cache.lookup(PRODUCTS, "q")

    lost = {key for key, value in zip(keys, values, strict=True) if value is None}
    assert lost == {key for key in keys if owner_port(cache, key) == dead.port}
    assert 0 < len(lost) < len(keys)
    assert later.key == first.key  # the counter's other copy answered: still cacheable
    await cache.bump(PRODUCTS)
    assert (await cache.lookup(PRODUCTS, "q")).key not in (None, first.key)
    await cache.close()


async def test_a_delete_stuck_on_a_dead_server_costs_only_its_key(
    three_memcached: list[Memcached],
) -> None:
    cache = pool_of([s.port for s in three_memcached], circuit_seconds=60)
    counter_homes = {node.port for node in cache._ring.replicas(version_key(PRODUCTS))}
    version = await cache.version(PRODUCTS)
    suffix = next(  # a page living with the counter, on the servers that stay up
        suffix
        for suffix in (f"page-{n}" for n in range(100))
        if owner_port(cache, make_key(PRODUCTS, version, suffix)) in counter_homes
    )
    await cache.set(make_key(PRODUCTS, version, suffix), b"page", 60)
    dead = next(s for s in three_memcached if s.port not in counter_homes)
    user_key = next(
        k for k in (f"user_{n}" for n in range(100)) if owner_port(cache, k) == dead.port
    )

    dead.stop()
    await cache.delete(user_key)  # its server is gone: the delete stays pending

    assert (await cache.lookup(PRODUCTS, suffix)).value == b"page"  # other keys still hit
    await cache.close()


async def test_a_counter_copy_coming_back_with_old_data_never_brings_back_its_version(
    three_memcached: list[Memcached],
) -> None:
    relays = [Partition(s.port) for s in three_memcached]
    for relay in relays:
        await relay.restore()
    ports = [relay.port for relay in relays]
    writer, reader = pool_of(ports, circuit_seconds=0.2), pool_of(ports, circuit_seconds=0.2)
    name = version_key(PRODUCTS)
    home, second = (relays[ports.index(n.port)] for n in writer._ring.replicas(name))
    for n in range(100):  # an entry on the third server, which stays reachable
        suffix, old = f"q{n}", await reader.lookup(PRODUCTS, f"q{n}")
        assert old.key is not None
        if owner_port(reader, old.key) not in (home.port, second.port):
            break
    await reader.set(old.key, b"old body", 60)

    await home.cut()  # a partition: home keeps its copy of the counter
    await writer.bump(PRODUCTS)
    await asyncio.sleep(0.6)  # the bump is retried on the copy it can reach
    assert not writer.pending.bumps
    await home.restore()
    after_return = await reader.lookup(PRODUCTS, suffix)
    await asyncio.sleep(0.1)  # the read raised home's copy in the background
    await second.cut()  # now only home's copy answers
    only_home = await reader.lookup(PRODUCTS, suffix)

    assert after_return.value is None and after_return.key != old.key
    assert only_home.value is None and only_home.key == after_return.key
    await second.restore()
    await writer.close()
    await reader.close()


async def test_a_counter_whose_every_copy_was_lost_restarts_above_its_old_versions(
    three_memcached: list[Memcached],
) -> None:
    cache = pool_of([s.port for s in three_memcached], circuit_seconds=0)
    name = version_key(PRODUCTS)
    await cache.lookup(PRODUCTS, "q")
    for _ in range(5):
        await cache.bump(PRODUCTS)
    before = await cache.version(PRODUCTS)
    homes = {node.port for node in cache._ring.replicas(name)}
    for server in three_memcached:
        if server.port in homes:  # both copies restart empty; entries elsewhere survive
            server.stop()
            server.start()

    fresh = pool_of([s.port for s in three_memcached])  # an instance that never saw it
    assert await fresh.version(PRODUCTS) > before
    await cache.close()
    await fresh.close()


# -- the shop under load -------------------------------------------------------------


class Load:
    """Customers reading one-product list pages on one API instance (each page its own
    cache key, so keys spread over every server), a staff member changing prices
    through another and reading each change back through the list; every status and
    price recorded."""

    def __init__(self, reader: httpx.AsyncClient, writer: httpx.AsyncClient) -> None:
        self.reader, self.writer = reader, writer
        self.statuses: list[int] = []
        self.reads = 0
        self.stale: list[str] = []
        self.customers: list[dict[str, str]] = []
        self.staff: dict[str, str] = {}
        self.products: list[int] = []
        self.listed: list[int] = []
        self.prices: dict[int, str] = {}
        self._stop = asyncio.Event()

    async def _read(self) -> None:
        while not self._stop.is_set():
            response = await self.reader.get(
                self.page_of(random.choice(self.products)), headers=random.choice(self.customers)
            )
            self.statuses.append(response.status_code)
            self.reads += 1

    async def _write(self) -> None:
        cents = 1000
        while not self._stop.is_set():
            product, cents = random.choice(self.products), cents + 1
            price = f"{Decimal(cents) / 100:.2f}"
            response = await self.writer.patch(
                f"/api/products/{product}/", json={"price": price}, headers=self.staff
            )
            self.statuses.append(response.status_code)
            if response.status_code != 200:
                continue
            seen = await self.reader.get(
                self.page_of(product), headers=random.choice(self.customers)
            )
            self.statuses.append(seen.status_code)
            self.reads += 1
            if seen.status_code == 200:
                [listed] = seen.json()["results"]
                assert listed["id"] == product
                if listed["price"] != price:
                    self.stale.append(f"product {product}: {listed['price']} after {price}")
            await asyncio.sleep(0.5)  # each change invalidates every cached product

    def page_of(self, product: int) -> str:
        """The one-product list page showing ``product`` (``listed``: the list's order)."""
        return f"/api/products/?limit=1&offset={self.listed.index(product)}"

    async def run(self, seconds: float) -> None:
        self._stop.clear()
        tasks = [asyncio.create_task(self._read()) for _ in range(4)]
        tasks.append(asyncio.create_task(self._write()))
        await asyncio.sleep(seconds)
        self._stop.set()
        await asyncio.gather(*tasks)


async def hit_ratio(app: Litestar, load: Load, seconds: float) -> float:
    """1 - page queries per list read on the reading instance while ``load`` runs: a
    lower bound of the share it answered from the cache (a miss may query more than
    once). A hit still reads its page's stock by primary key (``= ANY``): not counted."""
    reads = load.reads
    with count_statements(app.state.engine) as sql:
        await load.run(seconds)
    from_database = sum(
        "FROM products" in statement and "ANY" not in statement for statement in sql.statements
    )
    return 1 - from_database / (load.reads - reads)


@pytest.fixture
async def two_instances(
    postgres_url: str, three_memcached: list[Memcached]
) -> AsyncIterator[tuple[Litestar, Load]]:
    """Two API instances on the pool, and a Load with customers, a staff member, products."""
    url = ",".join(server.url for server in three_memcached)
    # A long timeout: on a busy machine a 50 ms one would also miss on live
    # servers; a killed server refuses connections at once anyway.
    settings = make_settings(postgres_url, url, CACHE_TIMEOUT="1")
    reader_app, writer_app = create_app(settings), create_app(settings)
    async with serve_in_process(reader_app) as reader, serve_in_process(writer_app) as writer:
        load = Load(reader, writer)
        async with reader_app.state.session_maker() as db:
            for _ in range(30):
                load.customers.append(auth_headers(settings, await make_user(db)))
            load.staff = auth_headers(settings, await make_user(db, is_staff=True))
            for _ in range(30):
                load.products.append((await make_product(db, price=Decimal("9.99"))).id)
        listing = await reader.get("/api/products/?limit=100", headers=load.customers[0])
        load.listed = [product["id"] for product in listing.json()["results"]]
        assert sorted(load.listed) == sorted(load.products)
        yield reader_app, load


async def test_killing_and_restarting_a_server_fails_no_request_and_serves_nothing_stale(
    two_instances: tuple[Litestar, Load], three_memcached: list[Memcached]
) -> None:
    reader_app, load = two_instances
    cache: MemcachedCache = reader_app.state.cache
    await load.run(1.0)  # warm
    ratio_on_three = await hit_ratio(reader_app, load, 1.5)
    counter_home = cache._ring.replicas(version_key(PRODUCTS))[0].port
    victim = next(s for s in three_memcached if s.port == counter_home)

    victim.stop()  # kill -9, during reads and writes
    await load.run(1.5)
    ratio_on_two = await hit_ratio(reader_app, load, 2.0)
    victim.start()  # same port, empty
    await load.run(2.0)

    assert set(load.statuses) == {200}, "a request failed"
    assert load.stale == []
    # Products on the two live servers still hit (about two thirds of them),
    # because the counter's other copy answers; had the counter been lost
    # with the server, every product read would go to PostgreSQL. Measured:
    # 0.87-0.93 on three, 0.24-0.25 on two; 0.0 with the counter on one server.
    assert ratio_on_two > 0.1, (ratio_on_three, ratio_on_two)
