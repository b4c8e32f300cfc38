"""Shipped-order webhooks: events recorded with the order change, delivered by a job.

(Delivery is built in the background-jobs issue.)
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from shop.orders.models import WebhookEvent

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shop.orders.models import Order

SHIPPED = "order.shipped"


async def enqueue_shipped(session: AsyncSession, order: Order) -> uuid.UUID:
    """Record an ``order.shipped`` event for ``order`` and defer its delivery, in one transaction.

    Returns the event id. The caller (the order lifecycle service) must call this in the same
    transaction as the status change; nothing is committed here.
    """
    from shop.jobs import defer
    from shop.orders.tasks import notify_shipped

    event_id = uuid.uuid4()
    session.add(
        WebhookEvent(
            event_id=event_id,
            order_id=order.id,
            kind=SHIPPED,
            payload={
                "order_id": order.id,
                "user_id": order.user_id,
                "status": "shipped",
                "total_amount": f"{order.total_price:.2f}",
            },
            outcome="pending",
        )
    )
    await session.flush()
    await defer(session, notify_shipped, event_id=str(event_id))
    return event_id
