"""The product cache: hits cost no SQL, writes are visible at once, ETags revalidate.

Cost of a list request once the caller's user snapshot is cached (measured
here and asserted, so a regression shows up as a failing test), in memcached
round trips ("cache calls"):
  hit:  no SQL, 1 cache call (the user snapshot, the catalogue version, the
        entry and the stock entries of the products the query showed last
        time, in one get: the lookup is started with authentication)
  miss: 1 SQL statement (the page, one row more than shown; a count only when
        the page does not tell it), 6 cache calls for a page of one product
        (that get, the normalised lookup, the entry stored, the page's stock
        figures published: one gets and one add, and the entry stored under
        the raw query string)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import httpx
import msgspec
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from shop.app import create_app
from shop.cache import PRODUCTS, Cache
from shop.catalog import schemas, stock
from shop.catalog.models import Product
from shop.pagination import ListPage
from tests.conftest import make_settings, memcached_url
from tests.support.asgi import serve_in_process
from tests.support.factories import make_product
from tests.support.servers import Memcached
from tests.support.sql import SqlCounter


def app_cache(app: Litestar) -> Cache:
    cache: Cache = app.state.cache
    return cache


async def warm_up(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Cache the caller's user snapshot and learn the current PRODUCTS version."""
    assert (await client.get("/api/products/?search=warm-up", headers=headers)).status_code == 200


def is_stock_lookup(statement: str) -> bool:
    """The statement of a cached read whose stock entries missed: the figures by primary key."""
    return statement.startswith("SELECT products.id, products.stock") and "ANY" in statement


def page_queries(sql: SqlCounter) -> list[str]:
    """Statements other than the stock lookup of a cached page."""
    return [s for s in sql.statements if not is_stock_lookup(s)]


async def test_list_hit_costs_one_cache_call_and_no_sql(
    client: httpx.AsyncClient,
    app: Litestar,
    db: AsyncSession,
    customer: dict[str, str],
    sql: SqlCounter,
) -> None:
    await make_product(db, name="Phone")
    first = await client.get("/api/products/", headers=customer)
    cache = app_cache(app)
    calls, sets = cache.stats.calls, cache.stats.sets
    sql.statements.clear()

    second = await client.get("/api/products/", headers=customer)

    assert second.content == first.content
    assert sql.count == 0
    assert cache.stats.calls - calls == 1
    assert cache.stats.sets == sets


async def test_list_miss_costs_one_query_and_stores_the_response(
    client: httpx.AsyncClient,
    app: Litestar,
    db: AsyncSession,
    customer: dict[str, str],
    sql: SqlCounter,
) -> None:
    await make_product(db, name="Phone")
    await warm_up(client, customer)
    cache = app_cache(app)
    calls, sets = cache.stats.calls, cache.stats.sets
    sql.statements.clear()

    response = await client.get("/api/products/", headers=customer)

    assert response.json()["count"] == 1
    assert sql.count == 1
    # user snapshot with the raw-query lookup, normalised lookup, the two
    # stores (under the normalised query and under the raw query string), and
    # the stock figure read by the page query, published (gets, then add).
    assert cache.stats.calls - calls == 6
    assert cache.stats.sets - sets == 2


async def test_same_filters_in_another_order_are_served_from_the_raw_key_afterwards(
    client: httpx.AsyncClient,
    app: Litestar,
    db: AsyncSession,
    customer: dict[str, str],
    sql: SqlCounter,
) -> None:
    await make_product(db, name="Phone", category="electronics")
    first = await client.get("/api/products/?category=electronics&limit=5", headers=customer)
    sql.statements.clear()

    other_order = await client.get("/api/products/?limit=5&category=electronics", headers=customer)
    again = await client.get("/api/products/?limit=5&category=electronics", headers=customer)
    # Another raw key for the same query: the handler finds the normalised entry and,
    # never having shown this query string, reads the stock entries by key.
    spelled_out = await client.get(
        "/api/products/?limit=5&category=electronics&offset=0", headers=customer
    )

    assert other_order.content == again.content == first.content
    assert spelled_out.json()["results"] == first.json()["results"]
    assert sql.statements == []  # no SQL at all: the stock figures come from their entries


async def test_invalid_query_is_never_answered_from_the_cache(
    client: httpx.AsyncClient, db: AsyncSession, customer: dict[str, str]
) -> None:
    await make_product(db)
    for _ in range(2):
        response = await client.get("/api/products/?limit=100000", headers=customer)
        assert response.status_code == 400
        assert [error["field"] for error in response.json()["errors"]] == ["limit"]


async def test_detail_hit_costs_one_cache_call_and_no_sql(
    client: httpx.AsyncClient,
    app: Litestar,
    db: AsyncSession,
    customer: dict[str, str],
    sql: SqlCounter,
) -> None:
    product = await make_product(db)
    first = await client.get(f"/api/products/{product.id}/", headers=customer)
    cache = app_cache(app)
    calls = cache.stats.calls
    sql.statements.clear()

    second = await client.get(f"/api/products/{product.id}", headers=customer)

    assert second.content == first.content
    assert sql.count == 0
    # the user snapshot, the detail's version and entry, and its stock figure, in one get
    assert cache.stats.calls - calls == 1


async def test_cached_bodies_are_byte_for_byte_what_the_schema_encodes(
    client: httpx.AsyncClient, db: AsyncSession, customer: dict[str, str]
) -> None:
    """Cached products are kept as pre-encoded JSON with the stock figure spliced in at
    each read: the bytes sent, from a miss and from a hit, are exactly msgspec's
    encoding of the documented schema, whatever the names hold."""
    tricky = 'Quote " and ,"stock":0,"category":"x" \\ \u00e9\u2603 \U0001f600'
    first = await make_product(db, name=tricky, description=tricky, stock=7)
    await make_product(db, name="Plain", stock=0, price=Decimal("0.50"))
    envelope = msgspec.json.Decoder(ListPage[schemas.Product])
    one = msgspec.json.Decoder(schemas.Product)

    for url, decoder in (
        ("/api/products/?limit=1", envelope),  # next link, exact count
        ("/api/products/?limit=1&offset=1", envelope),  # previous link
        ("/api/products/?page=1", envelope),
        (f"/api/products/{first.id}/", one),
    ):
        miss = await client.get(url, headers=customer)
        hit = await client.get(url, headers=customer)

        assert miss.status_code == hit.status_code == 200
        assert hit.content == miss.content
        assert msgspec.json.encode(decoder.decode(hit.content)) == hit.content
    detail = one.decode(hit.content)
    assert (detail.name, detail.description, detail.stock) == (tricky, tricky, 7)


async def test_the_same_filters_in_any_order_share_one_entry(
    client: httpx.AsyncClient, db: AsyncSession, customer: dict[str, str], sql: SqlCounter
) -> None:
    await make_product(db, category="books", price=Decimal("10.00"))
    first = await client.get(
        "/api/products/?category=books&price_min=5&ordering=price", headers=customer
    )
    sql.statements.clear()

    second = await client.get(
        "/api/products?ordering=price&price_min=5.00&limit=20&category=books&offset=0",
        headers=customer,
    )

    assert second.content == first.content
    assert page_queries(sql) == []


async def create(client: httpx.AsyncClient, staff: dict[str, str], product: Product) -> None:
    body = {"name": "New", "price": "1.00", "stock": 1, "category": "toys"}
    assert (await client.post("/api/products/", json=body, headers=staff)).status_code == 201


async def patch_price(client: httpx.AsyncClient, staff: dict[str, str], product: Product) -> None:
    url = f"/api/products/{product.id}/"
    assert (await client.patch(url, json={"price": "2.00"}, headers=staff)).status_code == 200


async def put_name(client: httpx.AsyncClient, staff: dict[str, str], product: Product) -> None:
    body = {"name": "Renamed", "price": "1.00", "stock": 1, "category": "toys"}
    url = f"/api/products/{product.id}/"
    assert (await client.put(url, json=body, headers=staff)).status_code == 200


async def archive(client: httpx.AsyncClient, staff: dict[str, str], product: Product) -> None:
    assert (await client.delete(f"/api/products/{product.id}/", headers=staff)).status_code == 204


Write = Callable[[httpx.AsyncClient, dict[str, str], Product], Awaitable[None]]


@pytest.mark.parametrize(
    ("write", "detail_changes"),
    [
        # a new product appears in the cached list (the old product's detail is as it was)
        (create, False),
        # a new price shows in list and detail
        (patch_price, True),
        # a full replacement too
        (put_name, True),
        # an archived product leaves list and detail
        (archive, True),
    ],
)
async def test_a_write_is_visible_at_once_in_cached_list_and_detail(
    client: httpx.AsyncClient,
    db: AsyncSession,
    customer: dict[str, str],
    staff: dict[str, str],
    write: Write,
    detail_changes: bool,
) -> None:
    product = await make_product(db, name="Old", price=Decimal("1.00"), stock=1, category="toys")
    list_before = await client.get("/api/products/", headers=customer)
    detail_before = await client.get(f"/api/products/{product.id}/", headers=customer)

    await write(client, staff, product)

    list_after = await client.get("/api/products/", headers=customer)
    detail_after = await client.get(f"/api/products/{product.id}/", headers=customer)
    assert list_after.content != list_before.content
    assert (detail_after.content != detail_before.content) is detail_changes


async def test_cached_pages_show_each_stock_change_without_a_catalogue_bump(
    client: httpx.AsyncClient,
    app: Litestar,
    db: AsyncSession,
    customer: dict[str, str],
    staff: dict[str, str],
) -> None:
    product = await make_product(db, stock=5, price=Decimal("10.00"))
    url = f"/api/products/{product.id}/"
    await client.get("/api/products/", headers=customer)
    await client.get(url, headers=customer)
    version = await app_cache(app).version(PRODUCTS)

    async def shown() -> tuple[list[int], int]:
        listed = (await client.get("/api/products/", headers=customer)).json()
        detail = (await client.get(url, headers=customer)).json()
        return [p["stock"] for p in listed["results"]], detail["stock"]

    body = {"items": [{"product_id": product.id, "quantity": 2}]}
    order = (await client.post("/api/orders/", json=body, headers=customer)).json()
    assert await shown() == ([3], 3)
    assert await app_cache(app).version(PRODUCTS) == version  # the page was a hit

    cancel = {"status": "cancelled"}
    assert (
        await client.patch(f"/api/orders/{order['id']}/", json=cancel, headers=customer)
    ).is_success
    assert await shown() == ([5], 5)
    assert await app_cache(app).version(PRODUCTS) == version

    assert (await client.patch(url, json={"stock": 9}, headers=staff)).status_code == 200
    assert await shown() == ([9], 9)


async def test_a_stock_figure_read_before_an_order_never_replaces_the_orders_figure(
    client: httpx.AsyncClient, app: Litestar, db: AsyncSession, customer: dict[str, str]
) -> None:
    """A reader that read the stock before an order committed, and stores it after the
    order published its figure, must not bring the old figure back (the versions order them)."""
    product = await make_product(db, stock=5, price=Decimal("10.00"))
    url = f"/api/products/{product.id}/"
    cache = app_cache(app)
    assert (await client.get(url, headers=customer)).json()["stock"] == 5  # cached
    (before,) = await stock.committed(app.state.engine, [product.id])

    body = {"items": [{"product_id": product.id, "quantity": 2}]}
    assert (await client.post("/api/orders/", json=body, headers=customer)).status_code == 201
    await stock.publish(cache, [before], ttl=300)  # the late reader

    assert before.stock == 5
    assert (await client.get(url, headers=customer)).json()["stock"] == 3


@pytest.mark.parametrize(
    ("stock", "quantity", "bumped"),
    [
        # stock stays above zero: every cached page of the catalogue survives the order
        (5, 2, False),
        # the product sells out: it leaves in_stock pages, so the catalogue version moves
        (2, 2, True),
    ],
)
async def test_an_order_bumps_the_catalogue_only_when_stock_reaches_zero(
    client: httpx.AsyncClient,
    app: Litestar,
    db: AsyncSession,
    customer: dict[str, str],
    stock: int,
    quantity: int,
    bumped: bool,
) -> None:
    product = await make_product(db, stock=stock, price=Decimal("10.00"))
    await client.get("/api/products/?in_stock=true", headers=customer)
    version = await app_cache(app).version(PRODUCTS)

    body = {"items": [{"product_id": product.id, "quantity": quantity}]}
    assert (await client.post("/api/orders/", json=body, headers=customer)).status_code == 201
    listed = (await client.get("/api/products/?in_stock=true", headers=customer)).json()

    assert (await app_cache(app).version(PRODUCTS) != version) is bumped
    expected = [] if bumped else [stock - quantity]
    assert [p["stock"] for p in listed["results"]] == expected


async def test_cancelling_a_sold_out_product_back_into_stock_bumps_the_catalogue(
    client: httpx.AsyncClient, app: Litestar, db: AsyncSession, customer: dict[str, str]
) -> None:
    product = await make_product(db, stock=1, price=Decimal("10.00"))
    body = {"items": [{"product_id": product.id, "quantity": 1}]}
    order = (await client.post("/api/orders/", json=body, headers=customer)).json()
    assert (await client.get("/api/products/?in_stock=true", headers=customer)).json()["count"] == 0

    cancelled = await client.patch(
        f"/api/orders/{order['id']}/", json={"status": "cancelled"}, headers=customer
    )

    listed = (await client.get("/api/products/?in_stock=true", headers=customer)).json()
    assert cancelled.status_code == 200
    assert [p["stock"] for p in listed["results"]] == [1]


async def test_concurrent_misses_of_one_key_run_one_query(
    client: httpx.AsyncClient,
    app: Litestar,
    db: AsyncSession,
    customer: dict[str, str],
    sql: SqlCounter,
) -> None:
    for n in range(3):
        await make_product(db, name=f"p{n}", category="books")
    await warm_up(client, customer)
    await app_cache(app).bump(PRODUCTS)  # the version moves: every entry misses at once
    sql.statements.clear()

    responses = await asyncio.gather(
        *(client.get("/api/products/?category=books", headers=customer) for _ in range(8))
    )

    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    # One page query for the eight requests; the other seven read the leader's
    # result and then only their own stock figures.
    assert len(page_queries(sql)) == 1


@pytest.mark.parametrize("path", ["/api/products/", "/api/products/{id}/"])
async def test_matching_if_none_match_gives_304_without_body(
    client: httpx.AsyncClient, db: AsyncSession, customer: dict[str, str], path: str
) -> None:
    product = await make_product(db)
    url = path.format(id=product.id)
    etag = (await client.get(url, headers=customer)).headers["etag"]

    response = await client.get(url, headers={**customer, "If-None-Match": etag})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        # the tag itself, or in a list of tags
        ("{etag}", 304),
        ('"other", {etag}', 304),
        # weak comparison: the strong form of our weak tag matches too
        ("{strong}", 304),
        # any representation
        ("*", 304),
        # someone else's tag
        ('W/"0000"', 200),
    ],
)
async def test_if_none_match_comparison(
    client: httpx.AsyncClient,
    db: AsyncSession,
    customer: dict[str, str],
    if_none_match: str,
    status: int,
) -> None:
    await make_product(db)
    etag = (await client.get("/api/products/", headers=customer)).headers["etag"]
    header = if_none_match.format(etag=etag, strong=etag.removeprefix("W/"))

    response = await client.get("/api/products/", headers={**customer, "If-None-Match": header})

    assert response.status_code == status


async def test_etag_changes_when_the_product_changes(
    client: httpx.AsyncClient, db: AsyncSession, customer: dict[str, str], staff: dict[str, str]
) -> None:
    product = await make_product(db, price=Decimal("1.00"))
    url = f"/api/products/{product.id}/"
    etag = (await client.get(url, headers=customer)).headers["etag"]
    await client.patch(url, json={"price": "2.00"}, headers=staff)

    response = await client.get(url, headers={**customer, "If-None-Match": etag})

    assert response.status_code == 200
    assert response.json()["price"] == "2.00"
    assert response.headers["etag"] != etag


async def test_a_list_etag_follows_its_stock_figures_and_links_not_its_version(
    client: httpx.AsyncClient, app: Litestar, db: AsyncSession, customer: dict[str, str]
) -> None:
    """A list's ETag is made of the entry's content, its stock figures and its links:
    an order that moves a figure (the page itself stays cached) changes it, so does
    another page of the same query; a version bump that changes nothing does not."""
    for _ in range(2):
        await make_product(db, stock=5)
    url = "/api/products/?limit=1"
    first = await client.get(url, headers=customer)
    etag = first.headers["etag"]
    shown = first.json()["results"][0]["id"]
    assert (await client.get(url, headers=customer)).headers["etag"] == etag  # a hit

    await app_cache(app).bump(PRODUCTS)  # nothing changed: a miss builds the same body
    same = await client.get(url, headers={**customer, "If-None-Match": etag})
    assert same.status_code == 304
    assert same.headers["etag"] == etag

    body = {"items": [{"product_id": shown, "quantity": 1}]}
    assert (await client.post("/api/orders/", json=body, headers=customer)).status_code == 201
    after = await client.get(url, headers={**customer, "If-None-Match": etag})
    assert after.json()["results"][0]["stock"] == 4
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    assert after.content != first.content

    other_page = await client.get("/api/products/?limit=1&offset=1", headers=customer)
    assert other_page.headers["etag"] not in (etag, after.headers["etag"])


@pytest.fixture
async def second_instance(
    postgres_url: str, memcached: Memcached | str
) -> AsyncIterator[httpx.AsyncClient]:
    """Another API instance on the same database and the same memcached."""
    settings = make_settings(postgres_url, memcached_url(memcached))
    async with serve_in_process(create_app(settings)) as other:
        yield other


async def test_write_through_one_instance_is_read_through_the_other_at_once(
    client: httpx.AsyncClient,
    second_instance: httpx.AsyncClient,
    db: AsyncSession,
    customer: dict[str, str],
    staff: dict[str, str],
) -> None:
    product = await make_product(db, price=Decimal("1.00"))
    url = f"/api/products/{product.id}/"
    for instance in (client, second_instance):  # both hold the old data in their cache path
        await instance.get(url, headers=customer)
        await instance.get("/api/products/", headers=customer)

    await client.patch(url, json={"price": "2.00"}, headers=staff)

    assert (await second_instance.get(url, headers=customer)).json()["price"] == "2.00"
    listed = (await second_instance.get("/api/products/", headers=customer)).json()
    assert listed["results"][0]["price"] == "2.00"

    await second_instance.patch(url, json={"price": "3.00"}, headers=staff)

    assert (await client.get(url, headers=customer)).json()["price"] == "3.00"
