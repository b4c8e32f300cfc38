"""The order lifecycle (SPEC §2): who may move an order where, and what each move does.

    pending    -> processing | shipped | cancelled
    processing -> shipped | cancelled
    shipped    -> delivered

A customer may only cancel their own pending or processing order; staff may
make any allowed move. The order row is locked for the transition, so two
racing requests are serialised: the second sees the first one's result (a
second cancel finds the order cancelled and gets 409, so stock is restored
exactly once).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.security import CurrentUser
from shop.cache import ORDERS, PRODUCTS, Cache
from shop.catalog import stock
from shop.db import after_commit
from shop.orders import schemas, webhooks
from shop.orders.access import require_owner_or_staff
from shop.orders.errors import OrderNotFound, StaffOnlyTransition, TransitionNotAllowed
from shop.orders.models import OrderStatus
from shop.orders.reader import OrderReader
from shop.orders.repositories import OrderRepository
from shop.orders.stock import StockRepository
from shop.schemas import MAX_ID
from shop.settings import Settings

__all__ = ["ALLOWED_MOVES", "CUSTOMER_MOVES", "Lifecycle", "allowed_next"]

ALLOWED_MOVES: dict[OrderStatus, tuple[OrderStatus, ...]] = {
    OrderStatus.PENDING: (OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.CANCELLED),
    OrderStatus.PROCESSING: (OrderStatus.SHIPPED, OrderStatus.CANCELLED),
    OrderStatus.SHIPPED: (OrderStatus.DELIVERED,),
    OrderStatus.DELIVERED: (),
    OrderStatus.CANCELLED: (),
}

CUSTOMER_MOVES = frozenset({OrderStatus.CANCELLED})
"""What a customer may do to their own order (when the lifecycle allows it at all)."""


def allowed_next(current: OrderStatus, user: CurrentUser) -> list[OrderStatus]:
    moves = ALLOWED_MOVES[current]
    return list(moves) if user.is_staff else [s for s in moves if s in CUSTOMER_MOVES]


class Lifecycle:
    def __init__(self, session: AsyncSession, cache: Cache, settings: Settings) -> None:
        self.settings = settings
        self.session = session
        self.cache = cache
        self.orders = OrderRepository(session=session)
        self.stock = StockRepository.of(session)
        self.reader = OrderReader(session, cache, settings)

    async def move(self, user: CurrentUser, order_id: int, target: OrderStatus) -> schemas.Order:
        order = await self.orders.lock(order_id) if 1 <= order_id <= MAX_ID else None
        if order is None:
            raise OrderNotFound()
        require_owner_or_staff(order.user_id, user)
        current = OrderStatus(order.status)
        allowed = allowed_next(current, user)
        if target not in ALLOWED_MOVES[current]:
            raise TransitionNotAllowed(
                f"An order that is {current} cannot become {target}.",
                allowed=[s.value for s in allowed],
                current=current.value,
            )
        if target not in allowed:
            raise StaffOnlyTransition(
                f"Only staff may move an order to {target}; "
                "you may only cancel a pending or processing order.",
                allowed=[s.value for s in allowed],
                current=current.value,
            )

        await self.orders.set_status(order, target, actor_id=user.id)
        if target is OrderStatus.CANCELLED:
            restored = await self.stock.restore_for_order(order.id)
            ttl = self.settings.cache.products_ttl
            after_commit(self.session, lambda: stock.publish(self.cache, restored.stocks, ttl))
            if restored.back_in_stock:
                # A sold-out product is back in stock: `in_stock` pages change.
                after_commit(self.session, lambda: self.cache.bump(PRODUCTS))
        elif target is OrderStatus.SHIPPED:
            # Recorded and deferred in this transaction: the webhook is sent
            # if and only if the order really became shipped.
            await webhooks.enqueue_shipped(self.session, order)
        after_commit(self.session, lambda: self.cache.bump(ORDERS))

        (result,) = await self.reader.load([order.id])
        return result
