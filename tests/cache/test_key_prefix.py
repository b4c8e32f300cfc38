"""Two shops on one memcached never read each other's entries (issue 14, point 8).

Shop A and shop B run on two databases and share one memcached, as staging
and production or two tenants might. Their ids overlap (both have a user 2,
a product 1, an order 1), so without a key prefix naming the database, B
would answer from A's entries: A's product, A's order, and A's staff
snapshot of "user 2" authorising B's customer 2 on a staff-only route.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest
from litestar import Litestar

from shop.accounts.security import user_cache_key
from shop.app import create_app
from shop.cache import PRODUCTS, Cache, MemcachedCache
from shop.identity import derive_prefix
from tests.conftest import make_settings, memcached_url, upgrade_async_sync
from tests.orders.helpers import place_order
from tests.support.asgi import serve_in_process
from tests.support.factories import auth_headers, make_product, make_user
from tests.support.servers import Memcached, postgres_server_url, with_database


@pytest.fixture
async def other_database() -> AsyncIterator[str]:
    """A second migrated database on the same server (libpq URL)."""
    server_url, handle = postgres_server_url()
    name = f"shop_test_other_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(server_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = with_database(server_url, name)
    await upgrade_async_sync(url)
    yield url
    conn = await asyncpg.connect(server_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()
    del handle


async def test_two_databases_on_one_memcached_never_see_each_others_entries(
    postgres_url: str, other_database: str, memcached: Memcached | str
) -> None:
    shared = memcached_url(memcached)
    settings_a = make_settings(postgres_url, shared)
    settings_b = make_settings(other_database, shared)
    app_a, app_b = create_app(settings_a), create_app(settings_b)
    async with serve_in_process(app_a) as shop_a, serve_in_process(app_b) as shop_b:
        # Shop B: customers 1 and 2, product 1, customer 2's order 1 (22.22).
        async with app_b.state.session_maker() as db:
            await make_user(db)
            b_customer = await make_user(db, is_staff=False)
            b_product = await make_product(db, name="B gadget", price=Decimal("22.22"))
        placed = await place_order(shop_b, settings_b, b_customer, (b_product.id, 1))
        assert placed.status_code == 201
        await cache_of(app_b).delete(user_cache_key(2))  # expired: A caches its user 2 first

        # Shop A: the same ids, user 2 is staff; every kind of entry gets cached.
        async with app_a.state.session_maker() as db:
            await make_user(db)
            a_staff = await make_user(db, is_staff=True)
            a_product = await make_product(db, name="A widget", price=Decimal("11.11"))
        assert (a_staff.id, a_product.id) == (b_customer.id, b_product.id) == (2, 1)
        a_headers = auth_headers(settings_a, a_staff)
        a_order = await place_order(shop_a, settings_a, a_staff, (a_product.id, 1))
        assert a_order.json()["id"] == placed.json()["id"] == 1
        for url in ("/api/products/", "/api/products/1/", "/api/orders/1/", "/api/auth/profile/"):
            assert (await shop_a.get(url, headers=a_headers)).status_code == 200
            assert (await shop_a.get(url, headers=a_headers)).status_code == 200  # now cached
        assert cache_of(app_a).stats.hits > 0

        # Shop B reads the same URLs as its customer 2.
        b_headers = auth_headers(settings_b, b_customer)
        listing = await shop_b.get("/api/products/", headers=b_headers)
        detail = await shop_b.get("/api/products/1/", headers=b_headers)
        order = await shop_b.get("/api/orders/1/", headers=b_headers)
        profile = await shop_b.get("/api/auth/profile/", headers=b_headers)
        staff_only = await shop_b.get("/api/admin/orders/", headers=b_headers)

    assert [p["name"] for p in listing.json()["results"]] == ["B gadget"]
    assert detail.json()["name"] == "B gadget"
    assert order.json()["total_price"] == "22.22"
    assert profile.json()["is_staff"] is False
    assert staff_only.status_code == 403  # never authorised by A's staff snapshot of "user 2"


def cache_of(app: Litestar) -> Cache:
    cache: Cache = app.state.cache
    return cache


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # a copy of the database under another name keeps the copied id
        (("id", "shop", "cluster"), ("id", "shop_copy", "cluster")),
        # the same name on another cluster (a dump restored into staging)
        (("id", "shop", "cluster"), ("id", "shop", "other cluster")),
        # two databases made by the migration
        (("id", "shop", "cluster"), ("other id", "shop", "cluster")),
    ],
)
def test_derived_prefixes_differ_between_databases(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    def prefix(parts: tuple[str, str, str]) -> str:
        return derive_prefix(uuid.uuid5(uuid.NAMESPACE_URL, parts[0]), parts[1], parts[2])

    assert prefix(a) != prefix(b)
    assert len(prefix(a)) <= 10 and prefix(a) == prefix(a)


async def test_until_the_database_names_the_prefix_nothing_is_cached_and_no_bump_is_lost(
    memcached: Memcached | str,
) -> None:
    """The API starts while PostgreSQL is down; its cache waits for the prefix."""
    host, _, port = memcached_url(memcached).rpartition(":")
    database_up = False

    async def read_prefix() -> str:
        if not database_up:
            raise OSError("connection refused")
        return "shop1:"

    named = MemcachedCache(host, int(port), 0.05, key_prefix="shop1:")
    before = await named.version(PRODUCTS)
    await named.set("user_1", b"snapshot", 60)
    waiting = MemcachedCache(host, int(port), 0.05, key_prefix=read_prefix)

    assert await waiting.get("user_1") is None  # skipped, not read under a wrong prefix
    await waiting.bump(PRODUCTS)  # kept pending
    database_up = True
    await asyncio.sleep(1.5)  # the prefix is read again at most once a second

    assert await named.version(PRODUCTS) == before + 1
    assert await waiting.get("user_1") == b"snapshot"
    await named.close()
    await waiting.close()
