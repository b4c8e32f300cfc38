"""The order lifecycle: who may make which move, and what each move does."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.settings import Settings
from tests.orders.helpers import count, jobs, place_order, set_status, stock_of
from tests.support.factories import auth_headers, make_product, make_user

# (from, to): (what staff gets, what the owning customer gets)
TRANSITIONS = [
    (("pending", "pending"), (409, 409)),  # no move to the same status
    (("pending", "processing"), (200, 403)),  # staff work
    (("pending", "shipped"), (200, 403)),  # staff may ship straight away
    (("pending", "delivered"), (409, 409)),  # must ship first
    (("pending", "cancelled"), (200, 200)),  # customers may cancel a pending order
    (("processing", "pending"), (409, 409)),  # no way back
    (("processing", "processing"), (409, 409)),  # no move to the same status
    (("processing", "shipped"), (200, 403)),  # staff work
    (("processing", "delivered"), (409, 409)),  # must ship first
    (("processing", "cancelled"), (200, 200)),  # customers may cancel while processing
    (("shipped", "pending"), (409, 409)),  # no way back
    (("shipped", "processing"), (409, 409)),  # no way back
    (("shipped", "shipped"), (409, 409)),  # no move to the same status
    (("shipped", "delivered"), (200, 403)),  # staff confirm delivery; customers cannot
    (("shipped", "cancelled"), (409, 409)),  # too late to cancel
    (("delivered", "pending"), (409, 409)),  # final
    (("delivered", "processing"), (409, 409)),  # final
    (("delivered", "shipped"), (409, 409)),  # final
    (("delivered", "delivered"), (409, 409)),  # final
    (("delivered", "cancelled"), (409, 409)),  # final
    (("cancelled", "pending"), (409, 409)),  # final
    (("cancelled", "processing"), (409, 409)),  # final
    (("cancelled", "shipped"), (409, 409)),  # final
    (("cancelled", "delivered"), (409, 409)),  # final
    (("cancelled", "cancelled"), (409, 409)),  # cancelling twice would restore stock twice
]

ALLOWED = {
    "staff": {
        "pending": ["processing", "shipped", "cancelled"],
        "processing": ["shipped", "cancelled"],
        "shipped": ["delivered"],
    },
    "customer": {"pending": ["cancelled"], "processing": ["cancelled"]},
}


async def _order_in(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession, status: str, quantity: int = 2
) -> tuple[User, int, int]:
    owner = await make_user(db)
    product = await make_product(db, stock=10)
    response = await place_order(client, settings, owner, (product.id, quantity))
    assert response.status_code == 201, response.text
    order_id = response.json()["id"]
    if status != "pending":
        await set_status(db, order_id, status)
    return owner, order_id, product.id


async def _patch(
    client: httpx.AsyncClient, settings: Settings, user: User, order_id: int, status: str
) -> httpx.Response:
    return await client.patch(
        f"/api/orders/{order_id}/", json={"status": status}, headers=auth_headers(settings, user)
    )


@pytest.mark.parametrize("role", ["staff", "customer"])
@pytest.mark.parametrize(
    ("move", "expected"), TRANSITIONS, ids=[f"{a}->{b}" for (a, b), _ in TRANSITIONS]
)
async def test_transition_rules(
    client: httpx.AsyncClient,
    settings: Settings,
    db: AsyncSession,
    role: str,
    move: tuple[str, str],
    expected: tuple[int, int],
) -> None:
    source, target = move
    owner, order_id, _ = await _order_in(client, settings, db, source)
    actor = await make_user(db, is_staff=True) if role == "staff" else owner
    status = expected[0] if role == "staff" else expected[1]

    response = await _patch(client, settings, actor, order_id, target)

    assert response.status_code == status, response.text
    history = await count(db, "order_status_changes", "order_id = :id", id=order_id)
    if status == 200:
        body = response.json()
        assert body["status"] == target
        assert [(h["from_status"], h["to_status"], h["actor"]) for h in body["history"]][-1] == (
            source,
            target,
            actor.id,
        )
        assert history == 2
    else:
        assert response.json()["allowed"] == ALLOWED[role].get(source, [])
        assert response.json()["current"] == source
        assert history == 1


async def test_another_customer_cannot_see_or_change_the_order(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    _, order_id, product_id = await _order_in(client, settings, db, "pending")
    stranger = await make_user(db)

    response = await _patch(client, settings, stranger, order_id, "cancelled")

    assert response.status_code == 404
    assert await stock_of(db, product_id) == 8


@pytest.mark.parametrize("source", ["pending", "processing"])
async def test_cancel_restores_stock(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession, source: str
) -> None:
    owner, order_id, product_id = await _order_in(client, settings, db, source, quantity=3)

    response = await _patch(client, settings, owner, order_id, "cancelled")

    assert response.status_code == 200
    assert await stock_of(db, product_id) == 10
    assert response.json()["order_items"][0]["product"]["stock"] == 10


async def test_racing_cancels_restore_stock_exactly_once(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    owner, order_id, product_id = await _order_in(client, settings, db, "pending", quantity=4)
    staff = await make_user(db, is_staff=True)

    responses = await asyncio.gather(
        *(
            _patch(client, settings, owner if i % 2 else staff, order_id, "cancelled")
            for i in range(8)
        )
    )

    assert sorted(r.status_code for r in responses) == [200] + [409] * 7
    refused = [r.json() for r in responses if r.status_code == 409]
    assert all((r["current"], r["allowed"]) == ("cancelled", []) for r in refused)
    assert await stock_of(db, product_id) == 10
    assert (
        await count(
            db, "order_status_changes", "order_id = :id AND to_status = 'cancelled'", id=order_id
        )
        == 1
    )


async def test_cancel_of_a_multi_item_order_restores_every_item(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    owner = await make_user(db)
    a = await make_product(db, stock=5)
    b = await make_product(db, stock=7)
    order_id = (await place_order(client, settings, owner, (b.id, 7), (a.id, 1))).json()["id"]

    await _patch(client, settings, owner, order_id, "cancelled")

    assert (await stock_of(db, a.id), await stock_of(db, b.id)) == (5, 7)


async def test_shipping_enqueues_the_webhook_job(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    _, order_id, _ = await _order_in(client, settings, db, "processing")
    staff = await make_user(db, is_staff=True)

    response = await _patch(client, settings, staff, order_id, "shipped")

    assert response.status_code == 200
    assert len(await jobs(db, "orders:notify_shipped")) == 1
    assert await count(db, "webhook_events", "order_id = :id", id=order_id) == 1


async def test_refused_shipping_enqueues_nothing(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    owner, order_id, _ = await _order_in(client, settings, db, "processing")

    response = await _patch(client, settings, owner, order_id, "shipped")

    assert response.status_code == 403
    assert (response.json()["allowed"], response.json()["current"]) == (["cancelled"], "processing")
    assert await jobs(db, "orders:notify_shipped") == []
    assert await count(db, "webhook_events") == 0


@pytest.mark.parametrize(
    "body",
    [
        {"status": "lost"},  # unknown status
        {"status": None},  # null
        {},  # missing
        {"status": 3},  # wrong type
    ],
)
async def test_bad_status_body_is_400(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession, body: object
) -> None:
    owner, order_id, _ = await _order_in(client, settings, db, "pending")

    response = await client.patch(
        f"/api/orders/{order_id}/", json=body, headers=auth_headers(settings, owner)
    )

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["status"]
    assert await count(db, "order_status_changes", "order_id = :id", id=order_id) == 1
