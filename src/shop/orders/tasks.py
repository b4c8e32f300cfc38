"""Background jobs of the orders domain (invoice, shipped webhook), and queue housekeeping.

Each task takes ids, opens its own session and is safe to run twice.
"""

from __future__ import annotations

import procrastinate

bp = procrastinate.Blueprint()


@bp.task(name="generate_invoice", pass_context=True, queue="invoices")
async def generate_invoice(context: procrastinate.JobContext, order_id: int) -> None:
    """Render, store and e-mail the invoice of ``order_id`` (see orders/invoices.py)."""
    raise NotImplementedError  # built in the background-jobs issue


@bp.task(name="notify_shipped", pass_context=True, queue="webhooks")
async def notify_shipped(context: procrastinate.JobContext, event_id: str) -> None:
    """Deliver one shipped-order webhook event (see orders/webhooks.py)."""
    raise NotImplementedError  # built in the background-jobs issue
