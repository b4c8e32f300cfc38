"""Checkout under real concurrency: never oversell, never deadlock, never 5xx."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from shop.settings import Settings
from tests.orders.helpers import count, jobs, place_order, stock_of
from tests.support.factories import make_product, make_user


async def test_fifty_buyers_for_seven_units_make_exactly_seven_orders(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    product = await make_product(db, stock=7)
    buyers = [await make_user(db) for _ in range(50)]

    responses = await asyncio.gather(
        *(place_order(client, settings, b, (product.id, 1)) for b in buyers)
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 7 + [409] * 43
    assert await stock_of(db, product.id) == 0
    assert await count(db, "orders") == 7
    assert await count(db, "order_items", "product_id = :p", p=product.id) == 7
    assert len(await jobs(db, "orders:generate_invoice")) == 7
    refused = [r.json() for r in responses if r.status_code == 409]
    assert all(r["shortages"][0]["requested"] == 1 for r in refused)


async def test_baskets_with_the_same_products_in_opposite_order_do_not_deadlock(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    a = await make_product(db, stock=100)
    b = await make_product(db, stock=100)
    buyers = [await make_user(db) for _ in range(40)]

    responses = await asyncio.gather(
        *(
            place_order(
                client,
                settings,
                buyer,
                *([(a.id, 1), (b.id, 2)] if i % 2 else [(b.id, 2), (a.id, 1)]),
            )
            for i, buyer in enumerate(buyers)
        )
    )

    assert [r.status_code for r in responses] == [201] * 40, {
        r.text for r in responses if r.status_code != 201
    }
    assert (await stock_of(db, a.id), await stock_of(db, b.id)) == (60, 20)
    assert await count(db, "orders") == 40


async def test_concurrent_multi_item_orders_never_oversell_any_product(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    products = [await make_product(db, stock=5) for _ in range(3)]
    buyers = [await make_user(db) for _ in range(30)]
    baskets = [
        [(p.id, 1 + (i + j) % 2) for j, p in enumerate(products) if (i + j) % 3] for i in range(30)
    ]

    responses = await asyncio.gather(
        *(
            place_order(client, settings, buyer, *basket)
            for buyer, basket in zip(buyers, baskets, strict=True)
        )
    )

    assert {r.status_code for r in responses} <= {201, 409}
    assert all(r.json()["shortages"] for r in responses if r.status_code == 409)
    sold = {p.id: 0 for p in products}
    for response, basket in zip(responses, baskets, strict=True):
        if response.status_code == 201:
            for product_id, quantity in basket:
                sold[product_id] += quantity
    for product in products:
        assert await stock_of(db, product.id) == 5 - sold[product.id] >= 0
