"""Arrange-and-assert helpers shared by the order tests."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.settings import Settings
from tests.support.factories import auth_headers


async def place_order(
    client: httpx.AsyncClient,
    settings: Settings,
    user: User,
    *lines: tuple[int, int],
    **headers: str,
) -> httpx.Response:
    body = {"items": [{"product_id": p, "quantity": q} for p, q in lines]}
    return await client.post(
        "/api/orders/", json=body, headers={**auth_headers(settings, user), **headers}
    )


async def stock_of(db: AsyncSession, product_id: int) -> int:
    value = await db.scalar(text("SELECT stock FROM products WHERE id = :id"), {"id": product_id})
    await db.commit()
    return int(value)


async def count(db: AsyncSession, table: str, where: str = "true", **params: Any) -> int:
    value = await db.scalar(text(f"SELECT count(*) FROM {table} WHERE {where}"), params)
    await db.commit()
    return int(value or 0)


async def jobs(db: AsyncSession, task_name: str) -> list[dict[str, Any]]:
    rows = await db.execute(
        text("SELECT args FROM procrastinate_jobs WHERE task_name = :t ORDER BY id"),
        {"t": task_name},
    )
    result = [dict(r.args) for r in rows]
    await db.commit()
    return result


async def set_status(db: AsyncSession, order_id: int, status: str) -> None:
    await db.execute(
        text("UPDATE orders SET status = :s WHERE id = :id"), {"s": status, "id": order_id}
    )
    await db.commit()
