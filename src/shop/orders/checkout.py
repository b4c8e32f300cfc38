"""Placing an order: all or nothing, and never more than is in stock.

One statement (`CheckoutRepository.place`) locks the basket's products in
ascending id order, so concurrent buyers neither oversell nor deadlock, and
only when every line can be served (the product exists, is sold, has the
stock, and the total is within bounds) takes the stock and inserts the order
with its invoice job. A refused basket changes nothing; this module then
explains why from the rows the statement returned.

The acceptance rules are written twice, once as the statement's ``verdict``
(SQL, in `stock.py`) and once as `refusal` here, which says which rule a refused
basket broke. tests/orders/test_checkout_rules.py runs every rule, and every
boundary, through both and checks they agree.

The checkout never chooses how its session runs: the request's session provider
does (`shop.db`). Without an Idempotency-Key the checkout is the request's only
database work, and the route asks for a session in autocommit, so the statement
runs outside an explicit transaction: PostgreSQL commits it as it completes. The
products' row locks are then held only while the server runs it, not across
round trips to a busy Python process, which is what bounds throughput on a
popular product. With an Idempotency-Key it runs inside the request's
transaction, next to the key's record.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.security import CurrentUser
from shop.cache import PRODUCTS, Cache
from shop.catalog import stock
from shop.db import after_commit
from shop.errors import InvalidInput, ShopError
from shop.jobs import task_job
from shop.orders import schemas
from shop.orders.errors import (
    InsufficientStock,
    OrderBelowMinimum,
    OrderTooLarge,
    ProductNotFound,
    ProductUnavailable,
)
from shop.orders.models import OrderStatus
from shop.orders.stock import BasketLine, CheckoutRepository, JobToDefer, LockedProduct
from shop.schemas import MAX_MONEY, money
from shop.settings import Settings

__all__ = ["Checkout", "refusal"]


class Checkout:
    def __init__(self, session: AsyncSession, cache: Cache, settings: Settings) -> None:
        self.session = session
        self.cache = cache
        self.settings = settings
        self.orders = CheckoutRepository.of(session)

    async def place(self, user: CurrentUser, data: schemas.OrderCreate) -> schemas.Order:
        """Place ``data`` for ``user`` or raise saying why nothing was ordered.

        The statement runs in the session as the request's provider set it up:
        its own transaction in autocommit, or part of the request's transaction.
        """
        self._validate(data)
        placed = await self.orders.place(
            user.id,
            [(line.product_id, line.quantity) for line in data.items],
            min_total=self.settings.min_order_amount,
            max_total=MAX_MONEY,
            job=_invoice_job(),
        )
        inserted = placed.order
        if inserted is None:
            raise refusal(placed.lines, self.settings.min_order_amount) or RuntimeError(
                "checkout refused a basket it found no fault with"
            )
        # The new stock figures, published before the 201 leaves: the client's next
        # read, on any instance, shows its decrement (`shop.catalog.stock`).
        taken = [
            stock.Stock(line.product.id, line.product.stock, line.product.stock_version)
            for line in placed.lines
            if line.product is not None
        ]
        ttl = self.settings.cache.products_ttl
        after_commit(self.session, lambda: stock.publish(self.cache, taken, ttl))
        if any(item.stock == 0 for item in taken):
            # A product sold out: it leaves `in_stock=true` pages and counts. An
            # order that leaves stock above zero changes no cached page (stock
            # figures have entries of their own), so the catalogue's cache survives it.
            after_commit(self.session, lambda: self.cache.bump(PRODUCTS))

        bought = [(_product(line), line.quantity) for line in placed.lines]
        total = sum((product.price * quantity for product, quantity in bought), Decimal("0"))
        return schemas.Order(
            id=inserted.id,
            user=user.id,
            status=OrderStatus.PENDING,
            total_price=money(total),
            order_items=[
                _item(inserted.item_ids[product.id], product, quantity)
                for product, quantity in bought
            ],
            history=[
                schemas.StatusChange(
                    from_status=None,
                    to_status=OrderStatus.PENDING,
                    actor=user.id,
                    at=inserted.history_at,
                )
            ],
            created_at=inserted.created_at,
            updated_at=inserted.updated_at,
        )

    def _validate(self, data: schemas.OrderCreate) -> None:
        """At most MAX_ORDER_ITEMS lines, and a product only once per order."""
        limit = self.settings.max_order_items
        if len(data.items) > limit:
            raise OrderTooLarge(
                f"An order may have at most {limit} items.",
                errors=[{"field": "items", "message": f"at most {limit} items"}],
            )
        counts = Counter(line.product_id for line in data.items)
        duplicates = [
            {
                "field": f"items[{i}].product_id",
                "message": f"product {line.product_id} appears more than once",
            }
            for i, line in enumerate(data.items)
            if counts[line.product_id] > 1
        ]
        if duplicates:
            raise InvalidInput("Each product may appear only once in an order.", errors=duplicates)


def refusal(basket: list[BasketLine], min_total: Decimal) -> ShopError | None:
    """The error saying why the checkout statement refused ``basket`` (its lines as
    locked), or None for a basket it must accept: unknown products first, then
    archived ones, then shortages, then the total (at most `MAX_MONEY`, at least
    ``min_total``). The statement's ``verdict`` applies the same rules."""
    missing = [(i, line) for i, line in enumerate(basket) if line.product is None]
    if missing:
        return ProductNotFound(
            "Some products in the order do not exist.",
            errors=[
                {
                    "field": f"items[{i}].product_id",
                    "message": f"product {line.product_id} does not exist",
                }
                for i, line in missing
            ],
        )
    found = [(i, line, _product(line)) for i, line in enumerate(basket)]
    archived = [(i, line) for i, line, product in found if product.archived]
    if archived:
        return ProductUnavailable(
            "Some products in the order are no longer sold.",
            errors=[
                {
                    "field": f"items[{i}].product_id",
                    "message": f"product {line.product_id} is no longer sold",
                }
                for i, line in archived
            ],
        )
    shortages = [
        {
            "product_id": product.id,
            "name": product.name,
            "requested": line.quantity,
            "available": product.stock,
        }
        for _, line, product in found
        if product.stock < line.quantity
    ]
    if shortages:
        names = ", ".join(
            f"{s['name']} (requested {s['requested']}, available {s['available']})"
            for s in shortages
        )
        return InsufficientStock(
            f"Not enough stock: {names}. Nothing was ordered.", shortages=shortages
        )
    total = sum((product.price * line.quantity for _, line, product in found), Decimal("0"))
    if total > MAX_MONEY:
        return OrderTooLarge(f"The order total exceeds {money(MAX_MONEY)}.")
    if total < min_total:
        return OrderBelowMinimum(
            f"The order total {money(total)} is below the minimum order amount {money(min_total)}.",
            minimum=money(min_total),
            total=money(total),
        )
    return None


def _product(line: BasketLine) -> LockedProduct:
    if line.product is None:  # unknown products are refused before anything else
        raise RuntimeError(f"product {line.product_id} does not exist")
    return line.product


def _invoice_job() -> JobToDefer:
    """The invoice job as Procrastinate would defer it (queue, name, retry lock...)."""
    job = task_job("orders:generate_invoice")
    return JobToDefer(
        queue_name=job.queue,
        task_name=job.task_name,
        priority=job.priority,
        lock=job.lock,
        queueing_lock=job.queueing_lock,
        args=dict(job.task_kwargs),
        scheduled_at=job.scheduled_at,
    )


def _item(item_id: int, product: LockedProduct, quantity: int) -> schemas.OrderItem:
    return schemas.OrderItem(
        id=item_id,
        product=schemas.OrderedProduct(
            id=product.id,
            name=product.name,
            description=product.description,
            price=money(product.price),
            stock=product.stock,
            category=product.category,
            created_at=product.created_at,
            updated_at=product.updated_at,
        ),
        quantity=quantity,
        price_at_purchase=money(product.price),
        total_price=money(product.price * quantity),
    )
