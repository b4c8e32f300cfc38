"""Reading orders: who sees what (also through the cache), lists, filters, pagination."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import httpx
import msgspec
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.accounts.security import CurrentUser
from shop.cache import ORDERS, Cache
from shop.orders import schemas
from shop.orders.errors import OrderNotFound
from shop.orders.reader import OrderReader
from shop.settings import Settings
from tests.orders.helpers import place_order, set_status, stock_of
from tests.support.factories import auth_headers, make_product, make_user
from tests.support.sql import SqlCounter


def current_user(user: User) -> CurrentUser:
    return CurrentUser(
        id=user.id,
        username=user.username,
        email=user.email,
        is_staff=user.is_staff,
        is_active=user.is_active,
    )


async def test_other_customer_gets_404_even_when_cached(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    alice, bob = await make_user(db), await make_user(db)
    product = await make_product(db, stock=5)
    order_id = (await place_order(client, settings, alice, (product.id, 1))).json()["id"]
    first = await client.get(f"/api/orders/{order_id}/", headers=auth_headers(settings, alice))
    assert first.status_code == 200  # fills the cache

    response = await client.get(f"/api/orders/{order_id}/", headers=auth_headers(settings, bob))

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "total_price" not in response.text


async def test_other_customer_gets_404_right_after_checkout_before_anything_is_cached(
    app: Litestar, client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    alice, bob = await make_user(db), await make_user(db)
    product = await make_product(db, stock=5)
    order_id = (await place_order(client, settings, alice, (product.id, 2))).json()["id"]
    cache: Cache = app.state.cache
    assert (await cache.lookup(ORDERS, str(order_id))).value is None  # the uncached path
    stranger = auth_headers(settings, bob)

    detail = await client.get(f"/api/orders/{order_id}/", headers=stranger)
    invoice = await client.get(f"/api/orders/{order_id}/invoice", headers=stranger)
    cancel = await client.patch(
        f"/api/orders/{order_id}/", json={"status": "cancelled"}, headers=stranger
    )

    for response in (detail, invoice, cancel):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "No such order" in response.json()["detail"]
        assert "total_price" not in response.text
    assert await stock_of(db, product.id) == 3  # the stranger's cancel restored nothing
    mine = await client.get(f"/api/orders/{order_id}/", headers=auth_headers(settings, alice))
    assert mine.status_code == 200 and mine.json()["status"] == "pending"


async def test_a_cache_entry_too_short_to_be_ours_is_a_miss(
    app: Litestar, client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    owner = await make_user(db)
    product = await make_product(db, stock=5)
    order_id = (await place_order(client, settings, owner, (product.id, 1))).json()["id"]
    cache: Cache = app.state.cache
    found = await cache.lookup(ORDERS, str(order_id))
    assert found.key is not None
    # Just an owner id and no body, or an owner id and bytes that are no order (a
    # foreign, truncated or older-format value under our key).
    for junk in (b"", b"\xc1 not msgpack", b"\x93\x01\x02\x03"):
        await cache.set(found.key, owner.id.to_bytes(8, "big") + junk, 60)

        response = await client.get(
            f"/api/orders/{order_id}/", headers=auth_headers(settings, owner)
        )

        assert response.status_code == 200
        assert response.json()["id"] == order_id  # read from PostgreSQL, not the junk


async def test_detail_without_the_routes_lookup_reads_and_fills_the_cache_itself(
    app: Litestar, client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    owner, stranger = await make_user(db), await make_user(db)
    product = await make_product(db, stock=5)
    order_id = (await place_order(client, settings, owner, (product.id, 1))).json()["id"]
    reader = OrderReader(db, app.state.cache, settings)

    body = await reader.detail(order_id, current_user(owner))

    assert msgspec.json.decode(body)["id"] == order_id
    assert (await app.state.cache.lookup(ORDERS, str(order_id))).value is not None
    with pytest.raises(OrderNotFound):
        await reader.detail(order_id, current_user(stranger))  # now from the cache


async def test_cached_detail_is_one_memcached_round_trip_and_no_sql(
    app: Litestar, client: httpx.AsyncClient, settings: Settings, db: AsyncSession, sql: SqlCounter
) -> None:
    owner = await make_user(db)
    product = await make_product(db, stock=5)
    order = (await place_order(client, settings, owner, (product.id, 1))).json()
    url, headers = f"/api/orders/{order['id']}/", auth_headers(settings, owner)
    first = await client.get(url, headers=headers)  # fills the cache
    cache: Cache = app.state.cache
    calls = cache.stats.calls
    sql.statements.clear()

    second = await client.get(url, headers=headers)

    assert second.status_code == 200 and second.content == first.content
    assert sql.count == 0
    # The owner's snapshot and the entry in one get: the route's lookup is
    # started with authentication (shop.reads); ownership is still checked.
    assert cache.stats.calls - calls == 1


async def test_a_cached_order_is_byte_for_byte_what_the_schema_encodes(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    """The entry keeps the order's JSON cut around each item's stock figure: a hit
    splices today's figures in, and the bytes are msgspec's encoding of the schema."""
    owner, other = await make_user(db), await make_user(db)
    tricky = 'Quote " and "stock":-1, \\ \u00e9\u2603 \U0001f600'
    first = await make_product(db, name=tricky, description=tricky, stock=9)
    second = await make_product(db, stock=4)
    order = (await place_order(client, settings, owner, (first.id, 2), (second.id, 1))).json()
    url, headers = f"/api/orders/{order['id']}/", auth_headers(settings, owner)
    miss = await client.get(url, headers=headers)
    await place_order(client, settings, other, (second.id, 3))  # someone else buys

    hit = await client.get(url, headers=headers)

    decoded = msgspec.json.decode(hit.content, type=schemas.Order)
    assert msgspec.json.encode(decoded) == hit.content
    stocks = {item.product.id: item.product.stock for item in decoded.order_items}
    assert stocks == {first.id: 7, second.id: 0}
    assert decoded.order_items[0].product.name == tricky
    assert msgspec.json.decode(miss.content, type=schemas.Order).order_items[1].product.stock == 3


async def test_staff_see_any_order(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    alice, staff = await make_user(db), await make_user(db, is_staff=True)
    product = await make_product(db, stock=5)
    order_id = (await place_order(client, settings, alice, (product.id, 1))).json()["id"]

    response = await client.get(f"/api/orders/{order_id}", headers=auth_headers(settings, staff))

    assert response.status_code == 200
    assert response.json()["user"] == alice.id


@pytest.mark.parametrize(
    "path", ["/api/orders/999999/", "/api/orders/99999999999999999999/", "/api/orders/0/"]
)
async def test_missing_or_absurd_order_id_is_404_or_400(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession, path: str
) -> None:
    user = await make_user(db)

    response = await client.get(path, headers=auth_headers(settings, user))

    assert response.status_code in {400, 404}


async def test_detail_is_fresh_after_a_status_change(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    alice = await make_user(db)
    product = await make_product(db, stock=5)
    order_id = (await place_order(client, settings, alice, (product.id, 2))).json()["id"]
    await client.get(
        f"/api/orders/{order_id}/", headers=auth_headers(settings, alice)
    )  # cached as pending

    await client.patch(
        f"/api/orders/{order_id}/",
        json={"status": "cancelled"},
        headers=auth_headers(settings, alice),
    )
    response = await client.get(f"/api/orders/{order_id}/", headers=auth_headers(settings, alice))

    assert response.json()["status"] == "cancelled"
    assert response.json()["order_items"][0]["product"]["stock"] == 5


async def test_a_cached_detail_shows_its_products_as_they_are_now(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    """An item's stock and updated_at are the product's current ones, not those of when
    the detail was cached: later orders (the owner's own, someone else's) and a staff edit."""
    alice, bob = await make_user(db), await make_user(db)
    staff = await make_user(db, is_staff=True)
    product = await make_product(db, stock=10)
    order_id = (await place_order(client, settings, alice, (product.id, 1))).json()["id"]
    url, headers = f"/api/orders/{order_id}/", auth_headers(settings, alice)

    async def shown() -> dict[str, object]:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200
        return dict(response.json()["order_items"][0]["product"])

    assert (await shown())["stock"] == 9  # now cached
    assert (await place_order(client, settings, alice, (product.id, 2))).status_code == 201
    assert (await shown())["stock"] == 7
    assert (await place_order(client, settings, bob, (product.id, 3))).status_code == 201
    assert (await shown())["stock"] == 4

    edited = await client.patch(
        f"/api/products/{product.id}/",
        json={"description": "now with a lid", "stock": 20},
        headers=auth_headers(settings, staff),
    )
    assert edited.status_code == 200
    after = await shown()  # built again: the edit moved the orders' version
    assert after["updated_at"] == edited.json()["updated_at"]
    assert after["stock"] == 20
    assert (await shown())["stock"] == 20  # a hit: the figure the edit published
    assert after["description"] == "A fine product"  # what was bought: the snapshot at purchase


async def test_own_orders_are_listed_newest_first_and_paginated(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    alice, bob = await make_user(db), await make_user(db)
    product = await make_product(db, stock=50)
    mine = [
        (await place_order(client, settings, alice, (product.id, 1))).json()["id"] for _ in range(3)
    ]
    await place_order(client, settings, bob, (product.id, 1))

    page = (
        await client.get("/api/orders/?limit=2&offset=0", headers=auth_headers(settings, alice))
    ).json()
    rest = (
        await client.get("/api/orders/?limit=2&offset=2", headers=auth_headers(settings, alice))
    ).json()

    assert [o["id"] for o in page["results"] + rest["results"]] == mine[::-1]
    assert page["count"] == 3
    assert page["next"] == "http://localhost/api/orders/?limit=2&offset=2"
    assert (rest["next"], rest["previous"]) == (None, "http://localhost/api/orders/?limit=2")
    assert page["results"][0]["order_items"][0]["product"]["id"] == product.id


async def test_own_orders_filter_by_status(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    alice = await make_user(db)
    product = await make_product(db, stock=50)
    first, _second = [
        (await place_order(client, settings, alice, (product.id, 1))).json()["id"] for _ in range(2)
    ]
    await set_status(db, first, "shipped")

    response = await client.get(
        "/api/orders/?status=shipped", headers=auth_headers(settings, alice)
    )

    assert [o["id"] for o in response.json()["results"]] == [first]


@pytest.mark.parametrize(
    "query",
    [
        "status=lost",  # unknown status
        "limit=0",  # empty page
        "limit=101",  # beyond the maximum
        "limit=abc",  # not a number
        "offset=-1",  # negative
        "offset=99999999999999999999",  # absurd
    ],
)
async def test_bad_list_queries_are_400(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession, query: str
) -> None:
    user = await make_user(db)

    response = await client.get(f"/api/orders/?{query}", headers=auth_headers(settings, user))

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [query.split("=")[0]]


async def test_admin_list_needs_staff(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)

    response = await client.get("/api/admin/orders/", headers=auth_headers(settings, user))

    assert response.status_code == 403


async def test_admin_list_filters_by_status_user_and_dates(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    alice, bob, staff = await make_user(db), await make_user(db), await make_user(db, is_staff=True)
    product = await make_product(db, stock=50)
    a1 = (await place_order(client, settings, alice, (product.id, 1))).json()
    a2 = (await place_order(client, settings, alice, (product.id, 1))).json()
    b1 = (await place_order(client, settings, bob, (product.id, 1))).json()
    await set_status(db, a1["id"], "shipped")
    await set_status(db, b1["id"], "shipped")
    headers = auth_headers(settings, staff)

    everything = (await client.get("/api/admin/orders/", headers=headers)).json()
    readme = (
        await client.get(f"/api/admin/orders/?status=shipped&user_id={alice.id}", headers=headers)
    ).json()
    since = (
        await client.get(
            "/api/admin/orders/", params={"created_from": a2["created_at"]}, headers=headers
        )
    ).json()
    until = (
        await client.get(
            "/api/admin/orders/", params={"created_to": a1["created_at"]}, headers=headers
        )
    ).json()

    assert [o["id"] for o in everything["results"]] == [b1["id"], a2["id"], a1["id"]]
    assert [o["id"] for o in readme["results"]] == [a1["id"]]
    assert [o["id"] for o in since["results"]] == [b1["id"], a2["id"]]
    assert [o["id"] for o in until["results"]] == [a1["id"]]


async def test_admin_date_filters_honour_the_offset_given(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    alice, staff = await make_user(db), await make_user(db, is_staff=True)
    product = await make_product(db, stock=5)
    order = (await place_order(client, settings, alice, (product.id, 1))).json()
    placed = datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
    # Half an hour before the order, written at UTC+02:00: read as UTC it would be
    # 90 minutes after it, and the order would be filtered out.
    since = (placed - timedelta(minutes=30)).astimezone(timezone(timedelta(hours=2)))

    response = await client.get(
        "/api/admin/orders/",
        params={"created_from": since.isoformat()},
        headers=auth_headers(settings, staff),
    )

    assert response.status_code == 200
    body = response.json()
    listed = body["results"] if "results" in body else body["items"]  # either list envelope
    assert [o["id"] for o in listed] == [order["id"]]


async def test_admin_list_accepts_naive_dates_as_utc(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    staff = await make_user(db, is_staff=True)

    response = await client.get(
        "/api/admin/orders/?created_from=2020-01-01T00:00:00&created_to=2999-01-01T00:00:00",
        headers=auth_headers(settings, staff),
    )

    assert response.status_code == 200


async def test_concurrent_misses_of_one_order_all_get_it(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    """Eight reads of an order nobody cached yet: one builds it, the others take its result
    (`shop.reads`), and every one gets the whole order, its stock as it is now."""
    owner = await make_user(db)
    product = await make_product(db, stock=5)
    order_id = (await place_order(client, settings, owner, (product.id, 2))).json()["id"]
    headers = auth_headers(settings, owner)

    responses = await asyncio.gather(
        *(client.get(f"/api/orders/{order_id}/", headers=headers) for _ in range(8))
    )

    assert [r.status_code for r in responses] == [200] * 8
    assert len({r.content for r in responses}) == 1
    assert responses[0].json()["order_items"][0]["product"]["stock"] == 3
