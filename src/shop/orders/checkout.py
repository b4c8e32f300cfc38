"""Placing an order: all or nothing, and never more than is in stock.

Everything happens in the request's one transaction. Stock is taken with a
conditional decrement (``stock >= quantity AND NOT archived``) on rows locked
in ascending id order, so concurrent buyers can neither oversell nor deadlock.
When any line cannot be served the service raises, the framework rolls the
transaction back, and every decrement already made disappears with it.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

import shop.jobs  # noqa: F401  registers generate_invoice under its namespaced name
from shop.accounts.security import CurrentUser
from shop.cache import PRODUCTS, Cache
from shop.db import after_commit
from shop.errors import InvalidInput
from shop.orders import schemas
from shop.orders.models import OrderStatus
from shop.orders.repositories import (
    ClaimedProduct,
    JobToDefer,
    OrderRepository,
    StockRepository,
)
from shop.orders.services import (
    InsufficientStock,
    OrderBelowMinimum,
    OrderTooLarge,
    ProductNotFound,
    ProductUnavailable,
)
from shop.orders.tasks import generate_invoice
from shop.schemas import money
from shop.settings import Settings

__all__ = ["Checkout"]

MAX_TOTAL = Decimal("9999999999.99")
"""Largest amount NUMERIC(12, 2) holds."""


class Checkout:
    def __init__(self, session: AsyncSession, cache: Cache, settings: Settings) -> None:
        self.session = session
        self.cache = cache
        self.settings = settings
        self.stock = StockRepository(session)
        self.orders = OrderRepository(session=session)

    async def place(self, user: CurrentUser, data: schemas.OrderCreate) -> schemas.Order:
        lines = self._validated_lines(data)
        # One round trip: claim every line's stock and, only if all were
        # claimed and the total is within bounds, insert the order and its
        # invoice job. The job commits or rolls back with the order: no order
        # without its invoice, no invoice for an order that never existed.
        placed = await self.orders.place(
            user.id,
            [(line.product_id, line.quantity) for line in data.items],
            min_total=self.settings.min_order_amount,
            max_total=MAX_TOTAL,
            job=_invoice_job(),
        )
        claimed = {p.id: p for p in placed.claimed}
        if len(claimed) < len(lines):
            await self._explain_failure(data, lines, claimed)

        bought = [(claimed[line.product_id], line.quantity) for line in data.items]
        total = sum((product.price * quantity for product, quantity in bought), Decimal("0"))
        if total > MAX_TOTAL:
            raise OrderTooLarge(f"The order total exceeds {money(MAX_TOTAL)}.")
        if total < self.settings.min_order_amount:
            raise OrderBelowMinimum(
                f"The order total {money(total)} is below the minimum order amount "
                f"{money(self.settings.min_order_amount)}.",
                minimum=money(self.settings.min_order_amount),
                total=money(total),
            )
        inserted = placed.order
        if inserted is None:  # every check above passed, so the statement inserted
            raise RuntimeError("checkout claimed every line but inserted no order")
        after_commit(self.session, lambda: self.cache.bump(PRODUCTS))

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

    def _validated_lines(self, data: schemas.OrderCreate) -> dict[int, int]:
        """``product id -> quantity``; a product may appear only once per order."""
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
        return {line.product_id: line.quantity for line in data.items}

    async def _explain_failure(
        self, data: schemas.OrderCreate, lines: dict[int, int], claimed: dict[int, ClaimedProduct]
    ) -> None:
        """Raise the error saying why some lines could not be served (unknown, archived, short)."""
        failed = [product_id for product_id in lines if product_id not in claimed]
        # The claim locked every requested product that exists, so the stock
        # read here is current and cannot change before we roll back.
        found = {row.id: row for row in await self.stock.describe(failed)}
        position = {line.product_id: i for i, line in enumerate(data.items)}

        missing = [i for i in failed if i not in found]
        if missing:
            raise ProductNotFound(
                "Some products in the order do not exist.",
                errors=[
                    {
                        "field": f"items[{position[i]}].product_id",
                        "message": f"product {i} does not exist",
                    }
                    for i in missing
                ],
            )
        archived = [i for i in failed if found[i].archived]
        if archived:
            raise ProductUnavailable(
                "Some products in the order are no longer sold.",
                errors=[
                    {
                        "field": f"items[{position[i]}].product_id",
                        "message": f"product {i} is no longer sold",
                    }
                    for i in archived
                ],
            )
        shortages = [
            {
                "product_id": i,
                "name": found[i].name,
                "requested": lines[i],
                "available": found[i].stock,
            }
            for i in failed
        ]
        names = ", ".join(
            f"{s['name']} (requested {s['requested']}, available {s['available']})"
            for s in shortages
        )
        raise InsufficientStock(
            f"Not enough stock: {names}. Nothing was ordered.", shortages=shortages
        )


def _invoice_job() -> JobToDefer:
    """The invoice job as Procrastinate would defer it (queue, name, retry lock...)."""
    job = generate_invoice.configure().job
    return JobToDefer(
        queue_name=job.queue,
        task_name=job.task_name,
        priority=job.priority,
        lock=job.lock,
        queueing_lock=job.queueing_lock,
        args=dict(job.task_kwargs),
        scheduled_at=job.scheduled_at,
    )


def _item(item_id: int, product: ClaimedProduct, quantity: int) -> schemas.OrderItem:
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
