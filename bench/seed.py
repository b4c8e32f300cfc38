"""Seed the shop through its public API, the way clients fill it: products, customers, orders.

Everything goes through HTTP (register, staff product creation, checkout), so
the data is exactly what the API would have written, caches and jobs included.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import httpx

from bench.servers import STAFF

__all__ = ["Fixture", "seed"]

CATEGORIES = ("electronics", "clothing", "books", "home", "sports", "toys")
PASSWORD = "Correct-Horse-Battery-42"
AMPLE_STOCK = 10_000_000
"""Enough that no benchmark order is ever refused for stock: S4/S5 measure the success path."""

T = TypeVar("T")


@dataclass
class Customer:
    user_id: int
    email: str
    access: str


@dataclass
class Fixture:
    customers: list[Customer]
    product_ids: list[int]
    hot_product_id: int
    orders: list[tuple[str, int]] = field(default_factory=list)
    """(owner's access token, order id)."""


async def _gather(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


async def _post(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], token: str | None = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(path, json=body, headers=headers)
    if response.status_code not in (200, 201):
        raise SystemExit(
            f"bench: seeding {path} failed: {response.status_code} {response.text[:300]}"
        )
    return response.json()


def _product(n: int) -> dict[str, Any]:
    price = Decimal(random.randint(100, 99_999)) / 100  # noqa: S311
    return {
        "name": f"Bench product {n:04d}",
        "description": f"Product number {n} of the benchmark catalogue, with a sentence of text.",
        "price": f"{price:.2f}",
        "stock": AMPLE_STOCK,
        "category": CATEGORIES[n % len(CATEGORIES)],
    }


async def _seed(base_url: str, products: int, users: int, orders: int) -> Fixture:
    random.seed(8)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        staff_email, _, staff_password = STAFF
        staff = (
            await _post(
                client, "/api/auth/login/", {"email": staff_email, "password": staff_password}
            )
        )["access"]

        made = await _gather(
            16,
            [
                lambda n=n: _post(client, "/api/products/", _product(n), staff)
                for n in range(products)
            ],
        )
        hot = await _post(
            client,
            "/api/products/",
            {
                **_product(0),
                "name": "Bench hot product",
                "price": "19.99",
                "stock": AMPLE_STOCK * 10,
            },
            staff,
        )

        def register(n: int) -> Callable[[], Awaitable[Any]]:
            body = {
                "username": f"shopper{n:03d}",
                "email": f"shopper{n:03d}@bench.example.com",
                "password": PASSWORD,
                "password_confirm": PASSWORD,
            }
            return lambda: _post(client, "/api/auth/register/", body)

        registered = await _gather(4, [register(n) for n in range(users)])
        customers = [Customer(r["user"]["id"], r["user"]["email"], r["access"]) for r in registered]
        product_ids = sorted(p["id"] for p in made)

        def order(n: int) -> Callable[[], Awaitable[tuple[str, int]]]:
            owner = customers[n % len(customers)]
            picked = random.sample(product_ids, random.randint(1, 3))  # noqa: S311
            body = {"items": [{"product_id": i, "quantity": random.randint(1, 3)} for i in picked]}  # noqa: S311

            async def run() -> tuple[str, int]:
                return owner.access, (await _post(client, "/api/orders/", body, owner.access))["id"]

            return run

        placed = await _gather(8, [order(n) for n in range(orders)])
    return Fixture(customers, product_ids, hot["id"], placed)


def seed(base_url: str, *, products: int, users: int, orders: int) -> Fixture:
    return asyncio.run(_seed(base_url, products, users, orders))
