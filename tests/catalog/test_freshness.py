"""A client never sees stale data after its own write, whichever instance it reads.

Orders no longer invalidate the catalogue (the cache survives a selling shop):
these tests hold the promise that made the cache worth having. Two instances
share PostgreSQL and memcached: the in-process app (``client``) and a second
app served by uvicorn (``live_server``).
"""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shop.catalog.models import Product
from shop.catalog.repositories import _conditions
from shop.catalog.schemas import ProductQuery
from shop.pagination import Explain
from tests.support.factories import make_product


async def stock_seen(
    reader: httpx.AsyncClient, headers: dict[str, str], product_id: int
) -> list[int]:
    """The product's stock as the list (a cached page) and the detail show it."""
    listed = (await reader.get("/api/products/?category=toys", headers=headers)).json()
    detail = (await reader.get(f"/api/products/{product_id}/", headers=headers)).json()
    return [p["stock"] for p in listed["results"] if p["id"] == product_id] + [detail["stock"]]


async def test_own_order_shows_its_decrement_on_either_instance_at_once(
    client: httpx.AsyncClient,
    live_server,
    db: AsyncSession,
    customer: dict[str, str],
) -> None:
    product = await make_product(db, stock=10, price=Decimal("5.00"), category="toys")
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as other:
        instances = [client, other]
        for reader in instances:  # both instances hold the page in the cache
            assert await stock_seen(reader, customer, product.id) == [10, 10]

        seen = []
        for n in range(4):
            writer = instances[n % 2]
            body = {"items": [{"product_id": product.id, "quantity": 1}]}
            assert (
                await writer.post("/api/orders/", json=body, headers=customer)
            ).status_code == 201
            seen.append([await stock_seen(reader, customer, product.id) for reader in instances])

    assert seen == [
        [[9, 9], [9, 9]],
        [[8, 8], [8, 8]],
        [[7, 7], [7, 7]],
        [[6, 6], [6, 6]],
    ]


@pytest.mark.parametrize("search", ["blue phone", "abc", "50%", "a_b"])
async def test_search_is_served_by_the_trigram_index(db: AsyncSession, search: str) -> None:
    # The list's own search condition, planned on a few thousand products with
    # sequential scans made unattractive: the planner must have an index for it.
    await db.execute(
        text(
            "INSERT INTO products (name, price, stock, category) "
            "SELECT 'product ' || n, 1, 1, 'toys' FROM generate_series(1, 5000) AS n"
        )
    )
    # Move the new rows from GIN's pending list into the index proper, as
    # autovacuum would, and give the planner statistics.
    await db.execute(text("SELECT gin_clean_pending_list('ix_products_live_name_trgm')"))
    await db.execute(text("ANALYZE products"))
    await db.execute(text("SET LOCAL enable_seqscan = off"))
    rows = select(Product.id).where(*_conditions(ProductQuery(search=search)))

    plan = await db.scalar(Explain(rows))

    assert "ix_products_live_name_trgm" in json.dumps(plan)
