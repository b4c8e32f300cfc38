"""Queries of the orders domain: stock claims, order inserts, loads, row locks, idempotency records.

The checkout path is one set-based statement (arrays in, rows out) because it
is the hot path, and on a popular product every buyer waits for the row lock
it takes: one round trip locks the products of every line and, only when the
whole basket can be served, takes the stock and inserts the order, its items,
its first history row and its invoice job (`_PLACE_ORDER`). A refused basket
changes nothing, so without an Idempotency-Key that statement is the whole
transaction, and the lock is held only while PostgreSQL runs it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import ColumnElement, Row, Select, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shop._compat.procrastinate import DEFER_JOBS_FUNCTION, JOB_TO_DEFER_TYPE
from shop.accounts.models import User
from shop.catalog.models import Product
from shop.catalog.stock import Stock
from shop.orders.models import IdempotencyRecord, Order, OrderItem, OrderStatusChange
from shop.pagination import Count, Window, count_rows, known_count

__all__ = [
    "BasketLine",
    "CheckoutRepository",
    "IdempotencyRepository",
    "InsertedOrder",
    "JobToDefer",
    "LockedProduct",
    "OrderRepository",
    "PlacedOrder",
    "RestoredStock",
    "StockRepository",
]


@dataclass(frozen=True, slots=True)
class LockedProduct:
    """A product row as the checkout statement locked it.

    ``stock`` is after this order took its quantity when the order was placed,
    and what is available otherwise.
    """

    id: int
    name: str
    description: str
    category: str
    price: Decimal
    stock: int
    archived: bool
    created_at: datetime
    updated_at: datetime
    stock_version: int
    """``products.stock_version`` of ``stock`` (see `shop.catalog.stock`)."""


@dataclass(frozen=True, slots=True)
class BasketLine:
    product_id: int
    quantity: int
    product: LockedProduct | None
    """None when no such product exists."""


@dataclass(frozen=True, slots=True)
class InsertedOrder:
    id: int
    created_at: datetime
    updated_at: datetime
    history_at: datetime
    item_ids: dict[int, int]
    """product id -> order item id."""


# Rows are locked in ascending id order (the sorted, materialised CTE) before
# the conditional decrement touches them, so two baskets sharing products in
# any order wait for each other instead of deadlocking. FOR NO KEY UPDATE is
# the lock the UPDATE would take anyway; it leaves foreign-key checks
# (order_items -> products) of other transactions unblocked.
_RESTORE_STOCK = text(
    """
    WITH returned AS (
        SELECT product_id, quantity FROM order_items WHERE order_id = :order_id
    ), locked AS MATERIALIZED (
        SELECT p.id FROM products p
        WHERE p.id IN (SELECT product_id FROM returned)
        ORDER BY p.id
        FOR NO KEY UPDATE
    )
    UPDATE products p
    SET stock = p.stock + r.quantity
    FROM returned r, locked l
    WHERE p.id = r.product_id AND l.id = p.id
    RETURNING p.id, p.stock, p.stock_version, p.stock = r.quantity AS was_sold_out
    """
)

# Check, claim, insert and enqueue in one statement. `locked` takes the row
# locks in ascending id order and, in READ COMMITTED, returns each row's latest
# committed version; `verdict` decides on those rows whether the whole basket
# can be served (every product exists, is not archived, has the stock, and the
# total is within bounds). Only then does anything change: the stock of every
# line is decremented, and the order (items in the client's order, its first
# history row and its invoice job, through Procrastinate's own
# procrastinate_defer_jobs_v1) is inserted. Otherwise the statement changes
# nothing and returns each line's product as locked, which is what the caller
# needs to explain the refusal. Because a refused basket writes nothing, the
# statement is a complete transaction on its own: PostgreSQL's implicit
# transaction makes it atomic, and the row locks last only while it runs.
# The UPDATE carries no stock condition of its own on purpose: the rows are
# locked and `verdict` checked them, and should that ever not hold, the CHECK
# (stock >= 0) aborts the whole statement rather than skip a line.
# The job CTE is MATERIALIZED and referenced, so it runs exactly once per
# inserted order. The D4/D5 benchmarks run this very statement (bench/checkout_sql.py).
_PLACE_ORDER = text(
    f"""
    WITH wanted AS (
        SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:quantities AS integer[]))
            WITH ORDINALITY AS w(product_id, quantity, n)
    ), locked AS MATERIALIZED (
        SELECT p.id, p.name, p.description, p.category, p.price, p.stock, p.archived,
               p.created_at, p.updated_at, p.stock_version
        FROM products p
        WHERE p.id = ANY(CAST(:ids AS bigint[]))
        ORDER BY p.id
        FOR NO KEY UPDATE
    ), verdict AS MATERIALIZED (
        SELECT coalesce(bool_and(l.id IS NOT NULL AND NOT l.archived AND l.stock >= w.quantity),
                        false)
               AND sum(l.price * w.quantity) BETWEEN :min_total AND :max_total AS ok,
               sum(l.price * w.quantity) AS total
        FROM wanted w LEFT JOIN locked l ON l.id = w.product_id
    ), claimed AS (
        UPDATE products p
        SET stock = p.stock - w.quantity
        FROM wanted w, verdict v
        WHERE v.ok AND p.id = w.product_id
        RETURNING p.id, p.stock, p.stock_version
    ), o AS (
        INSERT INTO orders (user_id, status, total_price)
        SELECT :user_id, 'pending', v.total FROM verdict v
        WHERE v.ok
        RETURNING id, created_at, updated_at
    ), i AS (
        INSERT INTO order_items (
            order_id, product_id, product_name, product_description, product_category,
            price_at_purchase, quantity
        )
        SELECT o.id, l.id, l.name, l.description, l.category, l.price, w.quantity
        FROM o, wanted w JOIN locked l ON l.id = w.product_id
        ORDER BY w.n
        RETURNING id, product_id
    ), h AS (
        INSERT INTO order_status_changes (order_id, from_status, to_status, actor_id)
        SELECT o.id, NULL, 'pending', :user_id FROM o
        RETURNING at
    ), j AS MATERIALIZED (
        SELECT {DEFER_JOBS_FUNCTION}(ARRAY[ROW(
            :queue_name, :task_name, :priority, :lock, :queueing_lock,
            CAST(:job_args AS jsonb) || jsonb_build_object('order_id', o.id), :scheduled_at
        )::{JOB_TO_DEFER_TYPE}]) AS job_ids
        FROM o
    )
    SELECT w.product_id, w.quantity, l.id, l.name, l.description, l.category, l.price,
           coalesce(c.stock, l.stock) AS stock, l.archived, l.created_at, l.updated_at,
           coalesce(c.stock_version, l.stock_version) AS stock_version, o.id AS order_id, o.created_at AS order_created_at, o.updated_at AS order_updated_at,
           h.at AS history_at, i.id AS item_id, j.job_ids
    FROM wanted w
    LEFT JOIN locked l ON l.id = w.product_id
    LEFT JOIN claimed c ON c.id = w.product_id
    LEFT JOIN o ON true
    LEFT JOIN h ON true
    LEFT JOIN j ON true
    LEFT JOIN i ON i.product_id = w.product_id
    ORDER BY w.n
    """  # noqa: S608  (the function and type names are constants, see _compat/procrastinate.py)
)


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """What `CheckoutRepository.place` did: every line with its product and, if placed, the order."""

    lines: list[BasketLine]
    """In the client's order."""
    order: InsertedOrder | None
    """None when the basket was refused; then the statement changed nothing."""


@dataclass(frozen=True, slots=True)
class JobToDefer:
    """The fields of ``procrastinate_job_to_defer_v1`` that do not depend on the order."""

    queue_name: str
    task_name: str
    priority: int
    lock: str | None
    queueing_lock: str | None
    args: dict[str, Any]
    scheduled_at: datetime | None


@dataclass(frozen=True, slots=True)
class RestoredStock:
    stocks: list[Stock]
    """Each product's stock after the return, with its version."""
    back_in_stock: bool
    """A product that was sold out (stock 0) is back in stock."""


class StockRepository:
    """Stock of products, as orders take and return it."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def restore_for_order(self, order_id: int) -> RestoredStock:
        """Give every item of ``order_id`` back to stock (locks rows in ascending id order)."""
        result = await self.session.execute(_RESTORE_STOCK, {"order_id": order_id})
        rows = result.all()
        return RestoredStock(
            stocks=[Stock(row.id, row.stock, row.stock_version) for row in rows],
            back_in_stock=any(row.was_sold_out for row in rows),
        )


class CheckoutRepository:
    """The checkout statement. A plain class: an advanced-alchemy repository costs
    measurably to build per request, and this one runs only `_PLACE_ORDER`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def place(
        self,
        user_id: int,
        lines: Sequence[tuple[int, int]],
        *,
        min_total: Decimal,
        max_total: Decimal,
        job: JobToDefer,
    ) -> PlacedOrder:
        """Place the order for ``(product id, quantity)`` lines if every line can be
        served and the total is within bounds: stock taken, order inserted and
        ``job`` enqueued for it. Otherwise nothing changes and ``order`` is None.

        The statement is complete on its own, so it may run outside a
        transaction (see `Checkout`), or inside a larger one.
        """
        params: dict[str, Any] = {
            "user_id": user_id,
            "ids": [product_id for product_id, _ in lines],
            "quantities": [quantity for _, quantity in lines],
            "min_total": min_total,
            "max_total": max_total,
            "queue_name": job.queue_name,
            "task_name": job.task_name,
            "priority": job.priority,
            "lock": job.lock,
            "queueing_lock": job.queueing_lock,
            "job_args": json.dumps(job.args),
            "scheduled_at": job.scheduled_at,
        }
        rows = (await self.session.execute(_PLACE_ORDER, params)).all()
        basket = [
            BasketLine(row[0], row[1], None if row[2] is None else LockedProduct(*row[2:12]))
            for row in rows
        ]
        first = rows[0] if rows else None
        if first is None or first.order_id is None:
            return PlacedOrder(basket, None)
        order = InsertedOrder(
            id=first.order_id,
            created_at=first.order_created_at,
            updated_at=first.order_updated_at,
            history_at=first.history_at,
            item_ids={row.product_id: row.item_id for row in rows},
        )
        return PlacedOrder(basket, order)


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
        scanned backwards: the page comes out in order without a sort.
        """
        conditions = order_conditions(user_id, status, created_from, created_to)
        found = list(await self.session.scalars(order_page_statement(conditions, limit, offset)))
        orders, has_next = found[:limit], len(found) > limit
        count = known_count(Window(limit, offset, None), len(orders), has_next)
        if count is None:
            count = await count_rows(self.session, select(Order.id).where(*conditions), count_max)
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

    async def items_with_products(
        self, order_ids: Sequence[int]
    ) -> list[Row[OrderItem, int, datetime, datetime]]:
        """Items of the orders with the current stock and timestamps of their product."""
        result = await self.session.execute(
            select(OrderItem, Product.stock, Product.created_at, Product.updated_at)
            .join(Product, Product.id == OrderItem.product_id)
            .where(OrderItem.order_id.in_(order_ids))
            .order_by(OrderItem.id)
        )
        return list(result.all())

    async def history(self, order_ids: Sequence[int]) -> list[OrderStatusChange]:
        result = await self.session.scalars(
            select(OrderStatusChange)
            .where(OrderStatusChange.order_id.in_(order_ids))
            .order_by(OrderStatusChange.id)
        )
        return list(result)

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


def order_conditions(
    user_id: int | None,
    status: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if user_id is not None:
        conditions.append(Order.user_id == user_id)
    if status is not None:
        conditions.append(Order.status == status)
    if created_from is not None:
        conditions.append(Order.created_at >= created_from)
    if created_to is not None:
        conditions.append(Order.created_at <= created_to)
    return conditions


def order_page_statement(
    conditions: list[ColumnElement[bool]], limit: int, offset: int
) -> Select[Order]:
    """Newest first, id breaking ties, one row more than the page (is there a next page?)."""
    return (
        select(Order)
        .where(*conditions)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(limit + 1)
        .offset(offset)
    )


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
