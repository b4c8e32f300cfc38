"""Placing an order: the happy path, money, atomicity and every way a basket can be refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from shop.app import create_app
from shop.settings import Settings
from tests.conftest import make_settings
from tests.orders.helpers import count, jobs, place_order, stock_of
from tests.support.asgi import serve_in_process
from tests.support.factories import auth_headers, make_product, make_user

INVOICE_TASK = "orders:generate_invoice"


async def test_order_is_created_with_its_items_history_and_decremented_stock(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    book = await make_product(db, name="Book", price=Decimal("12.50"), stock=5, category="books")
    lamp = await make_product(db, name="Lamp", price=Decimal("40.00"), stock=3, category="home")

    response = await place_order(client, settings, user, (book.id, 2), (lamp.id, 1))

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["user"] == user.id
    assert order["status"] == "pending"
    assert order["total_price"] == "65.00"
    assert [
        (i["product"]["id"], i["quantity"], i["price_at_purchase"], i["total_price"])
        for i in order["order_items"]
    ] == [
        (book.id, 2, "12.50", "25.00"),
        (lamp.id, 1, "40.00", "40.00"),
    ]
    assert order["order_items"][0]["product"] | {"created_at": None, "updated_at": None} == {
        "id": book.id,
        "name": "Book",
        "description": book.description,
        "price": "12.50",
        "stock": 3,
        "category": "books",
        "created_at": None,
        "updated_at": None,
    }
    assert [(h["from_status"], h["to_status"], h["actor"]) for h in order["history"]] == [
        (None, "pending", user.id)
    ]
    assert (await stock_of(db, book.id), await stock_of(db, lamp.id)) == (3, 2)
    detail = await client.get(f"/api/orders/{order['id']}/", headers=auth_headers(settings, user))
    assert detail.json() == order


async def test_curl_example_from_the_readme_works_as_written(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    await make_product(db, stock=5)
    await make_product(db, stock=5)
    content = '{"items":[{"product_id":1,"quantity":2},{"product_id":2,"quantity":1}]}'

    response = await client.post(
        "/api/orders/",
        content=content,
        headers={**auth_headers(settings, user), "Content-Type": "application/json"},
    )

    assert response.status_code == 201, response.text
    assert len(response.json()["order_items"]) == 2


@pytest.mark.parametrize(
    ("price", "quantity", "line_total", "order_total"),
    [
        ("0.10", 3, "0.30", "1.30"),  # 0.1 * 3 is 0.30000000000000004 in floats
        ("19.99", 7, "139.93", "140.93"),  # a float product drifts here
        ("0.01", 1, "0.01", "1.01"),  # the smallest price
        ("999999.99", 10, "9999999.90", "10000000.90"),  # large amounts keep every cent
    ],
)
async def test_totals_and_unit_prices_are_exact_to_the_cent(
    client: httpx.AsyncClient,
    settings: Settings,
    db: AsyncSession,
    price: str,
    quantity: int,
    line_total: str,
    order_total: str,
) -> None:
    user = await make_user(db)
    product = await make_product(db, price=Decimal(price), stock=1000)
    filler = await make_product(db, price=Decimal("1.00"), stock=1000)  # lifts the total over 1.00

    response = await place_order(client, settings, user, (product.id, quantity), (filler.id, 1))

    assert response.status_code == 201, response.text
    item = response.json()["order_items"][0]
    assert (item["price_at_purchase"], item["total_price"], response.json()["total_price"]) == (
        price,
        line_total,
        order_total,
    )
    stored = await db.scalar(
        text("SELECT total_price FROM orders WHERE id = :id"), {"id": response.json()["id"]}
    )
    await db.commit()
    assert stored == Decimal(order_total)


async def test_order_keeps_its_price_and_name_after_the_product_changes(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    product = await make_product(db, name="Old name", price=Decimal("19.99"), stock=10)
    order_id = (await place_order(client, settings, user, (product.id, 7))).json()["id"]
    await db.execute(
        text("UPDATE products SET price = 5.00, name = 'New name', archived = true WHERE id = :id"),
        {"id": product.id},
    )
    await db.commit()

    order = (
        await client.get(f"/api/orders/{order_id}/", headers=auth_headers(settings, user))
    ).json()

    (item,) = order["order_items"]
    assert (
        order["total_price"],
        item["price_at_purchase"],
        item["product"]["price"],
        item["product"]["name"],
    ) == (
        "139.93",
        "19.99",
        "19.99",
        "Old name",
    )


async def test_order_short_on_its_second_item_changes_nothing(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    plenty = await make_product(db, stock=10)
    scarce = await make_product(db, name="Scarce", stock=1)

    response = await place_order(client, settings, user, (plenty.id, 3), (scarce.id, 2))

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["shortages"] == [
        {"product_id": scarce.id, "name": "Scarce", "requested": 2, "available": 1}
    ]
    assert (await stock_of(db, plenty.id), await stock_of(db, scarce.id)) == (10, 1)
    assert await count(db, "orders") == 0
    assert await count(db, "order_items") == 0
    assert await count(db, "order_status_changes") == 0
    assert await jobs(db, INVOICE_TASK) == []


async def test_every_short_product_is_named(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    a = await make_product(db, stock=0)
    b = await make_product(db, stock=4)

    response = await place_order(client, settings, user, (b.id, 5), (a.id, 1))

    assert response.status_code == 409
    assert sorted((s["product_id"], s["available"]) for s in response.json()["shortages"]) == [
        (a.id, 0),
        (b.id, 4),
    ]


async def test_invoice_job_is_enqueued_with_the_order(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    product = await make_product(db, stock=5)

    order_id = (await place_order(client, settings, user, (product.id, 1))).json()["id"]

    assert await jobs(db, INVOICE_TASK) == [{"order_id": order_id}]


async def test_unknown_product_is_404_and_changes_nothing(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    product = await make_product(db, stock=5)

    response = await place_order(client, settings, user, (product.id, 1), (product.id + 1000, 1))

    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "items[1].product_id"
    assert await stock_of(db, product.id) == 5
    assert await count(db, "orders") == 0


async def test_archived_product_is_refused_with_400(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    sold = await make_product(db, stock=5)
    product = await make_product(db, stock=5, archived=True)

    response = await place_order(client, settings, user, (sold.id, 2), (product.id, 1))

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "items[1].product_id", "message": f"product {product.id} is no longer sold"}
    ]
    assert (await stock_of(db, sold.id), await stock_of(db, product.id)) == (5, 5)
    assert await count(db, "orders") == 0


async def test_total_above_what_an_order_can_hold_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    costly = await make_product(db, price=Decimal("9999999999.99"), stock=5)
    cheap = await make_product(db, price=Decimal("0.01"), stock=5)

    response = await place_order(client, settings, user, (cheap.id, 1), (costly.id, 1))

    assert response.status_code == 400, response.text
    assert "exceeds 9999999999.99" in response.json()["detail"]
    assert (await stock_of(db, cheap.id), await stock_of(db, costly.id)) == (5, 5)
    assert await count(db, "orders") == 0
    assert await jobs(db, INVOICE_TASK) == []


@pytest.mark.parametrize(
    ("idempotency_key", "autocommit"),
    [
        # Without a key the checkout statement is the whole transaction: no
        # BEGIN/COMMIT round trips, so row locks last only while it runs.
        (None, True),
        # With a key it shares a transaction with the key's record.
        ("checkout-in-a-transaction", False),
    ],
)
async def test_checkout_statement_runs_as_its_own_transaction_only_without_a_key(
    app: Litestar,
    client: httpx.AsyncClient,
    settings: Settings,
    db: AsyncSession,
    idempotency_key: str | None,
    autocommit: bool,
) -> None:
    user = await make_user(db)
    product = await make_product(db, stock=5)
    seen: list[tuple[bool, str]] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "INSERT INTO orders" in statement:
            seen.append((conn.connection.dbapi_connection.autocommit, statement))

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
        response = await place_order(client, settings, user, (product.id, 2), **headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert response.status_code == 201, response.text
    assert [flag for flag, _ in seen] == [autocommit]
    assert await stock_of(db, product.id) == 3
    assert await jobs(db, INVOICE_TASK) == [{"order_id": response.json()["id"]}]


def _items(*lines: tuple[Any, Any]) -> dict[str, Any]:
    return {"items": [{"product_id": p, "quantity": q} for p, q in lines]}


@pytest.mark.parametrize(
    ("body", "status", "field"),  # field: errors[].field, space-separated
    [
        (b"{not json", 400, None),  # malformed JSON
        (b"[]", 400, None),  # not an object (the whole body: no field)
        (b"{}", 400, "items"),  # items missing
        (_items(), 400, "items"),  # no items
        (_items(("P", "2")), 400, "items[0].quantity"),  # quantity as a string
        (_items(("P", 2.5)), 400, "items[0].quantity"),  # fractional quantity
        (_items(("P", 0)), 400, "items[0].quantity"),  # zero
        (_items(("P", -1)), 400, "items[0].quantity"),  # negative
        (_items(("P", 10**12)), 400, "items[0].quantity"),  # absurdly large
        (_items(("P", True)), 400, "items[0].quantity"),  # a boolean is not a quantity
        (_items(("P", None)), 400, "items[0].quantity"),  # null quantity
        (_items((None, 1)), 400, "items[0].product_id"),  # null product
        (_items(("1", 1)), 400, "items[0].product_id"),  # product id as a string
        (_items((0, 1)), 400, "items[0].product_id"),  # product id zero
        (_items((10**20, 1)), 400, "items[0].product_id"),  # product id beyond bigint
        ({"items": [{"quantity": 1}]}, 400, "items[0].product_id"),  # product_id missing
        ({"items": [{"product_id": "P"}]}, 400, "items[0].quantity"),  # quantity missing
        (
            {"items": [{"product_id": "P", "quantity": 1, "x": 1}]},
            400,
            "items[0].x",
        ),  # unknown field
        (
            _items(("P", 1), ("P", 2)),
            400,
            "items[0].product_id items[1].product_id",
        ),  # duplicate product
        ({"items": [{"product_id": "P", "quantity": 1}] * 101}, 400, "items"),  # too many items
        ({"items": "P"}, 400, "items"),  # items not a list
        (_items((999_999, 1)), 404, "items[0].product_id"),  # unknown product
    ],
)
async def test_invalid_basket_is_refused_without_500(
    client: httpx.AsyncClient,
    settings: Settings,
    db: AsyncSession,
    body: Any,
    status: int,
    field: str | None,
) -> None:
    user = await make_user(db)
    product = await make_product(db, stock=5)
    if isinstance(body, dict):
        import json

        raw = json.dumps(body).replace('"P"', str(product.id)).encode()
    else:
        raw = body

    response = await client.post(
        "/api/orders/",
        content=raw,
        headers={**auth_headers(settings, user), "Content-Type": "application/json"},
    )

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert [e["field"] for e in response.json()["errors"]] == field.split()
    assert await stock_of(db, product.id) == 5
    assert await count(db, "orders") == 0


async def test_order_needs_a_token(client: httpx.AsyncClient, db: AsyncSession) -> None:
    product = await make_product(db, stock=5)

    response = await client.post("/api/orders/", json=_items((product.id, 1)))

    assert response.status_code == 401
    assert await stock_of(db, product.id) == 5


@pytest.fixture(scope="module")
async def strict_shop(postgres_url: str, memcached: Any) -> Any:
    """A second app instance with MIN_ORDER_AMOUNT=10.00 on the same database."""
    from tests.conftest import memcached_url

    settings = make_settings(postgres_url, memcached_url(memcached), MIN_ORDER_AMOUNT="10.00")
    app: Litestar = create_app(settings)
    async with serve_in_process(app) as client:
        yield client, settings


@pytest.mark.parametrize(
    ("price", "quantity", "status"),
    [
        ("9.99", 1, 400),  # a cent short
        ("3.33", 3, 400),  # 9.99: a float total could round up to 10
        ("2.50", 4, 201),  # exactly the minimum
        ("10.01", 1, 201),  # above
    ],
)
async def test_minimum_order_amount_is_checked_against_the_exact_total(
    strict_shop: Any, db: AsyncSession, price: str, quantity: int, status: int
) -> None:
    client, settings = strict_shop
    user = await make_user(db)
    product = await make_product(db, price=Decimal(price), stock=10)

    response = await place_order(client, settings, user, (product.id, quantity))

    assert response.status_code == status, response.text
    assert await stock_of(db, product.id) == (10 if status != 201 else 10 - quantity)
    if status == 400:
        assert response.json()["minimum"] == "10.00"
        assert await jobs(db, INVOICE_TASK) == []


async def test_an_order_with_exactly_the_most_lines_allowed_is_placed(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    most = settings.max_order_items  # one more is refused (the invalid-basket table)
    products = [await make_product(db, stock=1, price=Decimal("1.00")) for _ in range(most)]

    response = await place_order(client, settings, user, *((p.id, 1) for p in products))

    assert response.status_code == 201, response.text
    assert len(response.json()["order_items"]) == most


@pytest.mark.parametrize(
    ("price", "quantity"),
    [
        (None, 2),  # the total is exactly the minimum (price x quantity), and all the stock
        ("9999999999.99", 1),  # exactly the largest total an order can hold
    ],
)
async def test_an_order_on_the_boundaries_is_placed(
    client: httpx.AsyncClient,
    settings: Settings,
    db: AsyncSession,
    price: str | None,
    quantity: int,
) -> None:
    user = await make_user(db)
    unit = Decimal(price) if price else settings.min_order_amount / quantity
    product = await make_product(db, price=unit, stock=quantity)

    response = await place_order(client, settings, user, (product.id, quantity))

    assert response.status_code == 201, response.text
    assert Decimal(response.json()["total_price"]) == unit * quantity
    assert await stock_of(db, product.id) == 0


@pytest.mark.parametrize(
    ("price", "stock", "quantity", "status", "member", "value"),
    [
        # below the minimum while taking exactly the whole stock: the minimum is the reason
        ("0.10", 2, 2, 400, "total", "0.20"),
        # above what an order can hold only through the quantity
        ("5000000000.00", 5, 2, 400, "detail", "The order total exceeds 9999999999.99."),
    ],
)
async def test_a_refusal_names_the_rule_that_was_broken(
    client: httpx.AsyncClient,
    settings: Settings,
    db: AsyncSession,
    price: str,
    stock: int,
    quantity: int,
    status: int,
    member: str,
    value: str,
) -> None:
    user = await make_user(db)
    product = await make_product(db, price=Decimal(price), stock=stock)

    response = await place_order(client, settings, user, (product.id, quantity))

    assert response.status_code == status, response.text
    assert response.json()[member] == value
    assert "shortages" not in response.json()
    assert await stock_of(db, product.id) == stock
