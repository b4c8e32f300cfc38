"""Shipped-order webhooks: events recorded with the order change, delivered by a job.

(Built in the background-jobs issue.)
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shop.orders.models import Order


async def enqueue_shipped(session: AsyncSession, order: Order) -> uuid.UUID:
    """Record a ``order.shipped`` event for ``order`` and defer its delivery, in the caller's transaction.

    Returns the event id. The caller (the order lifecycle service) must call this in the same
    transaction as the status change.
    """
    raise NotImplementedError
