"""Stock of products as orders take and return it: the checkout statement and the restore.

The checkout path is one set-based statement (arrays in, rows out) because it
is the hot path, and on a popular product every buyer waits for the row lock
it takes: one round trip locks the products of every line and, only when the
whole basket can be served, takes the stock and inserts the order, its items,
its first history row and its invoice job (`_PLACE_ORDER`). A refused basket
changes nothing, so without an Idempotency-Key that statement is the whole
transaction, and the lock is held only while PostgreSQL runs it. Cancelling an
order gives its items back (`_RESTORE_STOCK`), locking rows in the same order.

`CheckoutRepository` and `StockRepository` are advanced-alchemy repositories of
`Product`, as the design has them, built with ``of(session)``: a bound copy of
one instance per class rather than a new one per order, whose construction cost
2.5 % of the checkout's samples (`shop._compat.advanced_alchemy`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shop._compat.advanced_alchemy import bound_repository
from shop._compat.procrastinate import DEFER_JOBS_FUNCTION, JOB_TO_DEFER_TYPE
from shop.catalog.models import Product
from shop.catalog.stock import Stock

__all__ = [
    "BasketLine",
    "CheckoutRepository",
    "InsertedOrder",
    "JobToDefer",
    "LockedProduct",
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

# Check, claim, insert and enqueue in one statement. `locked` takes the row locks in
# ascending id order and, in READ COMMITTED, returns each row's latest committed
# version; `verdict` decides on those rows whether the whole basket can be served (every
# product exists, is not archived, has the stock, and the total is within bounds;
# `checkout.refusal` states the same rules in Python to explain a refusal, and
# tests/orders/test_checkout_rules.py checks the two agree). Only then does anything
# change: the stock of every line is decremented, and the order (items in the client's
# order, its first history row and its invoice job, through Procrastinate's own
# procrastinate_defer_jobs_v1) is inserted. Otherwise the statement changes nothing and
# returns each line's product as locked, which is what the caller needs to explain the
# refusal. Because a refused basket writes nothing, the statement is a complete
# transaction on its own: PostgreSQL's implicit transaction makes it atomic, and the row
# locks last only while it runs. The UPDATE carries no stock condition of its own on
# purpose: the rows are locked and `verdict` checked them, and should that ever not
# hold, the CHECK (stock >= 0) aborts the whole statement rather than skip a line. The
# job CTE is MATERIALIZED and referenced, so it runs exactly once per inserted order.
# The D4/D5 benchmarks run this very statement (bench/checkout_sql.py).
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
           coalesce(c.stock_version, l.stock_version) AS stock_version,
           o.id AS order_id, o.created_at AS order_created_at, o.updated_at AS order_updated_at,
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


class StockRepository(SQLAlchemyAsyncRepository[Product]):
    """Stock of products as cancelled orders return it. Build it with `of` (see the module)."""

    model_type = Product

    @classmethod
    def of(cls, session: AsyncSession) -> StockRepository:
        return bound_repository(cls, session)

    async def restore_for_order(self, order_id: int) -> RestoredStock:
        """Give every item of ``order_id`` back to stock (locks rows in ascending id order)."""
        result = await self.session.execute(_RESTORE_STOCK, {"order_id": order_id})
        rows = result.all()
        return RestoredStock(
            stocks=[Stock(row.id, row.stock, row.stock_version) for row in rows],
            back_in_stock=any(row.was_sold_out for row in rows),
        )


class CheckoutRepository(SQLAlchemyAsyncRepository[Product]):
    """Products' stock as orders take it: the checkout statement. Build it with `of`."""

    model_type = Product

    @classmethod
    def of(cls, session: AsyncSession) -> CheckoutRepository:
        return bound_repository(cls, session)

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
