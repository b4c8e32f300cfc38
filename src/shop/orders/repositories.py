"""Queries of the orders domain: loading and listing orders, status changes with their row
lock, idempotency records.

Stock claims (the checkout statement) and stock restores are in `stock.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    bindparam,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.catalog.models import Product
from shop.orders.models import IdempotencyRecord, Order, OrderItem, OrderStatusChange
from shop.pagination import Count, Window, count_rows, known_count, with_capped_count

__all__ = [
    "HISTORY_STATEMENT",
    "ITEMS_STATEMENT",
    "AnyRow",
    "IdempotencyRepository",
    "OrderRepository",
    "order_conditions",
    "order_page_statement",
]


AnyRow = Row[*tuple[Any, ...]]
"""A row of plain columns (items and history are read without the ORM)."""


class OrderRepository(SQLAlchemyAsyncRepository[Order]):
    model_type = Order

    async def lock(self, order_id: int) -> Order | None:
        """The order, locked FOR UPDATE until the transaction ends (status transitions)."""
        order: Order | None = await self.session.scalar(
            select(Order).where(Order.id == order_id).with_for_update()
        )
        return order

    async def by_ids(self, order_ids: Sequence[int]) -> list[Order]:
        result = await self.session.scalars(select(Order).where(Order.id.in_(order_ids)))
        return list(result)

    async def page(
        self,
        *,
        user_id: int | None = None,
        status: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        limit: int,
        offset: int,
        count_max: int = 1_000,
    ) -> tuple[list[Order], Count, bool]:
        """Orders matching the filters, newest first (id breaking ties), how many match
        (exact up to ``count_max``, else an estimate), and whether a next page follows.

        Each filter has an index ending in ``created_at, id`` (see the models),
        scanned backwards: the page comes out in order without a sort. The
        bounded count rides along with the page (`order_page_statement`).
        """
        filters = (user_id, status, created_from, created_to)
        shape = tuple(value is not None for value in filters)
        statement = _pages.get(shape)
        if statement is None:
            conditions = order_conditions(*filters)
            statement = _pages[shape] = order_page_statement(conditions, limit, offset, count_max)
        values = {
            "user_id": user_id,
            "status": status,
            "created_from": created_from,
            "created_to": created_to,
            "page_limit": limit + 1,
            "page_offset": offset,
            "count_cap": count_max + 1,
        }
        parameters = {name: value for name, value in values.items() if value is not None}
        found = (await self.session.execute(statement, parameters)).all()
        rows = [row[0] for row in found]
        orders, has_next = rows[:limit], len(rows) > limit
        count = known_count(Window(limit, offset, None), len(orders), has_next)
        if count is None:
            seen = int(found[0][1]) if found else None
            rows_counted = _matching(order_conditions(*filters))
            count = await count_rows(self.session, rows_counted, count_max, seen)
        return orders, count, has_next

    async def staff_search(
        self,
        *,
        search: str | None,
        status: str | None,
        user_id: int | None,
        created_from: datetime | None,
        created_to: datetime | None,
        limit: int,
        offset: int,
    ) -> tuple[list[tuple[Order, str, str]], int]:
        """Orders with their customer's e-mail and username, newest first; ``search`` matches
        the customer's e-mail or username (contains, case-insensitively)."""
        conditions: list[ColumnElement[bool]] = []
        if search:
            conditions.append(
                User.email.icontains(search, autoescape=True)
                | User.username.icontains(search, autoescape=True)
            )
        if status is not None:
            conditions.append(Order.status == status)
        if user_id is not None:
            conditions.append(Order.user_id == user_id)
        if created_from is not None:
            conditions.append(Order.created_at >= created_from)
        if created_to is not None:
            conditions.append(Order.created_at <= created_to)
        rows = (
            await self.session.execute(
                select(Order, User.email, User.username, func.count().over())
                .join(User, User.id == Order.user_id)
                .where(*conditions)
                .order_by(Order.created_at.desc(), Order.id.desc())
                .limit(limit)
                .offset(offset)
            )
        ).all()
        if rows:
            return [(row[0], row[1], row[2]) for row in rows], int(rows[0][3])
        joined = select(func.count()).select_from(Order).join(User, User.id == Order.user_id)
        return [], int(await self.session.scalar(joined.where(*conditions)) or 0)

    async def figures_since(
        self, today: datetime, week: datetime
    ) -> tuple[dict[str, int], Decimal, Decimal]:
        """For the dashboard, in one statement: orders placed since ``today`` by status, and
        the revenue since ``today`` and since ``week`` (cancelled orders excluded)."""
        counted = Order.status != "cancelled"
        rows = await self.session.execute(
            select(
                Order.status,
                func.count().filter(Order.created_at >= today),
                func.coalesce(
                    func.sum(Order.total_price).filter(Order.created_at >= today, counted), 0
                ),
                func.coalesce(func.sum(Order.total_price).filter(counted), 0),
            )
            .where(Order.created_at >= min(today, week))
            .group_by(Order.status)
        )
        by_status: dict[str, int] = {}
        revenue_today = revenue_week = Decimal("0")
        for status, count, day, whole in rows:
            by_status[status] = int(count)
            revenue_today += Decimal(day)
            revenue_week += Decimal(whole)
        return by_status, revenue_today, revenue_week

    async def items_with_products(self, order_ids: Sequence[int]) -> Sequence[AnyRow]:
        """Items of the orders with the current stock and timestamps of their product.

        Plain rows, not ORM objects: a list page assembles dozens of items, and
        loading them into the session's identity map cost CPU on every miss.
        """
        result = await self.session.execute(ITEMS_STATEMENT, {"order_ids": list(order_ids)})
        return result.all()

    async def history(self, order_ids: Sequence[int]) -> Sequence[AnyRow]:
        """The status changes of the orders, oldest first, as plain rows."""
        result = await self.session.execute(HISTORY_STATEMENT, {"order_ids": list(order_ids)})
        return result.all()

    async def set_status(self, order: Order, status: str, actor_id: int) -> None:
        """Move ``order`` to ``status`` and record who did it."""
        previous = order.status
        order.status = status
        self.session.add(
            OrderStatusChange(
                order_id=order.id, from_status=previous, to_status=status, actor_id=actor_id
            )
        )
        await self.session.flush()
        await self.session.refresh(order, ["updated_at"])


# Statements built once: building one (its clauses, then its cache key) cost about as
# much CPU as its round trip; only the values change between two requests.
ITEMS_STATEMENT = (
    select(
        OrderItem.id,
        OrderItem.order_id,
        OrderItem.product_id,
        OrderItem.product_name,
        OrderItem.product_description,
        OrderItem.product_category,
        OrderItem.price_at_purchase,
        OrderItem.quantity,
        Product.stock,
        Product.created_at,
        Product.updated_at,
    )
    .join(Product, Product.id == OrderItem.product_id)
    .where(OrderItem.order_id.in_(bindparam("order_ids", expanding=True)))
    .order_by(OrderItem.id)
)
HISTORY_STATEMENT = (
    select(
        OrderStatusChange.order_id,
        OrderStatusChange.from_status,
        OrderStatusChange.to_status,
        OrderStatusChange.actor_id,
        OrderStatusChange.at,
    )
    .where(OrderStatusChange.order_id.in_(bindparam("order_ids", expanding=True)))
    .order_by(OrderStatusChange.id)
)

_pages: dict[tuple[bool, ...], Select[Any]] = {}
"""One list statement per combination of filters (`OrderRepository.page`)."""


def order_conditions(
    user_id: int | None,
    status: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> list[ColumnElement[bool]]:
    """The filters given, as named parameters (a statement serves every request of its
    combination of filters; `OrderRepository.page` passes the values)."""
    conditions: list[ColumnElement[bool]] = []
    if user_id is not None:
        conditions.append(Order.user_id == bindparam("user_id", user_id))
    if status is not None:
        conditions.append(Order.status == bindparam("status", status))
    if created_from is not None:
        conditions.append(Order.created_at >= bindparam("created_from", created_from))
    if created_to is not None:
        conditions.append(Order.created_at <= bindparam("created_to", created_to))
    return conditions


def order_page_statement(
    conditions: list[ColumnElement[bool]], limit: int, offset: int, count_max: int
) -> Select[Any]:
    """Newest first, id breaking ties, one row more than the page (is there a next page?),
    and on every row how many orders match, counted up to ``count_max + 1``."""
    page = (
        select(Order)
        .where(*conditions)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(bindparam("page_limit", limit + 1, type_=Integer))
        .offset(bindparam("page_offset", offset, type_=Integer))
    )
    return with_capped_count(page, _matching(conditions), count_max)


def _matching(conditions: list[ColumnElement[bool]]) -> Select[Any]:
    """The ids of the orders a list counts."""
    return select(Order.id).where(*conditions)


def advisory_key(user_id: int, key: str) -> int:
    """A signed 64-bit lock id for one user's idempotency key."""
    digest = hashlib.sha256(f"idempotency:{user_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class IdempotencyRepository:
    """Stored first responses to ``Idempotency-Key`` requests."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def try_claim(self, user_id: int, key: str) -> bool:
        """Take the key's advisory lock (held until the transaction ends) without waiting.

        False when another request holds it, i.e. the key is in flight.
        """
        got: bool = await self.session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": advisory_key(user_id, key)}
        )
        return got

    async def start(self, user_id: int, key: str, request_hash: str, retention_hours: int) -> bool:
        """Record the key as in flight; False when a live record already exists.

        A record older than the retention period is taken over as if new.
        """
        result = await self.session.execute(
            text(
                """
                INSERT INTO idempotency_records (user_id, key, request_hash)
                VALUES (:user_id, :key, :hash)
                ON CONFLICT (user_id, key) DO UPDATE
                    SET request_hash = EXCLUDED.request_hash, response_status = NULL,
                        response_body = NULL, created_at = now()
                    WHERE idempotency_records.created_at < now() - make_interval(hours => :hours)
                RETURNING 1
                """
            ),
            {"user_id": user_id, "key": key, "hash": request_hash, "hours": retention_hours},
        )
        return result.first() is not None

    async def get(self, user_id: int, key: str) -> IdempotencyRecord | None:
        record: IdempotencyRecord | None = await self.session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
            )
        )
        return record

    async def finish(self, user_id: int, key: str, status: int, body: bytes) -> None:
        await self.session.execute(
            text(
                "UPDATE idempotency_records SET response_status = :status, response_body = :body "
                "WHERE user_id = :user_id AND key = :key"
            ),
            {"user_id": user_id, "key": key, "status": status, "body": body},
        )

    async def delete_expired(self, retention_hours: int) -> int:
        """Drop records past their retention; a retry that late runs afresh anyway."""
        result = await self.session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.created_at < func.now() - timedelta(hours=retention_hours)
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
