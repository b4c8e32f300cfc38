"""HTTP layer of webhook deliveries (the shipped-order notifications the worker sends).

* ``GET /api/admin/webhooks/deliveries``: staff view of shipped-order events and their attempts.
* ``POST /api/admin/webhooks/deliveries/{event_id}/redeliver``: staff send a failed event again.

The wire structs live here rather than in ``orders/schemas.py``: they describe
only these routes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.status_codes import HTTP_202_ACCEPTED
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.security import CurrentUser, requires_staff
from shop.errors import problem_responses
from shop.orders import webhooks
from shop.orders.models import WebhookAttempt, WebhookEvent
from shop.orders.webhooks import Outcome
from shop.pagination import (
    PAGE_SIZE,
    Limit,
    ListPage,
    PageNumber,
    from_page,
    offset_parameter,
    refuse_repeated,
    window,
)
from shop.schemas import Page

__all__ = ["Delivery", "DeliveryAttempt", "routes"]


class DeliveryAttempt(msgspec.Struct):
    attempt: int
    at: datetime
    outcome: str
    """delivered, failed, skipped, or retrying (a retry was scheduled)."""
    status_code: int | None
    error: str | None
    duration_ms: float


class Delivery(msgspec.Struct):
    """One webhook event: what is sent (``payload`` plus ``event_id``) and how sending went."""

    event_id: uuid.UUID
    order_id: int
    kind: str
    outcome: Outcome
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    attempts: list[DeliveryAttempt]


def _delivery(event: WebhookEvent, attempts: list[WebhookAttempt]) -> Delivery:
    return Delivery(
        event_id=event.event_id,
        order_id=event.order_id,
        kind=event.kind,
        outcome=Outcome(event.outcome),
        payload=event.payload,
        created_at=event.created_at,
        updated_at=event.updated_at,
        attempts=[
            DeliveryAttempt(
                attempt=a.attempt,
                at=a.at,
                outcome=a.outcome,
                status_code=a.status_code,
                error=a.error,
                duration_ms=round(a.duration_ms, 1),
            )
            for a in attempts
        ],
    )


MAX_OFFSET = 1_000_000
"""Deeper pages of the delivery log cost a scan of everything before them; filter by order."""


@get(
    "/api/admin/webhooks/deliveries",
    tags=["admin"],
    summary="List shipped-order webhook deliveries",
    guards=[requires_staff],
    responses=problem_responses(400, 401, 403, 404),
)
async def list_deliveries(
    request: Request[CurrentUser, Any, Any],
    db_session: NamedDependency[AsyncSession],
    order_id: Annotated[int | None, Parameter(ge=1, description="Only this order's events")] = None,
    outcome: Annotated[
        Outcome | None, Parameter(description="Only events with this outcome")
    ] = None,
    page: PageNumber = None,
    limit: Limit = PAGE_SIZE,
    offset: Annotated[int, offset_parameter(MAX_OFFSET)] = 0,
) -> ListPage[Delivery]:
    """Newest first; each event lists every attempt (time, status code or error, duration).
    Pages of 20 with `page`, or `limit`/`offset`."""
    given = refuse_repeated(request)
    at = window(page=page, limit=limit, offset=offset, given=given, max_offset=MAX_OFFSET)
    events, attempts, total = await webhooks.list_deliveries(
        db_session, order_id=order_id, outcome=outcome, limit=at.limit + 1, offset=at.offset
    )
    has_next = len(events) > at.limit
    found = Page(
        items=[_delivery(e, a) for e, a in zip(events, attempts, strict=True)][: at.limit],
        total=total,
        limit=at.limit,
        offset=at.offset,
        has_next=has_next,
    )
    return from_page(request, at, found)


@post(
    "/api/admin/webhooks/deliveries/{event_id:uuid}/redeliver",
    tags=["admin"],
    summary="Send a failed webhook event again",
    guards=[requires_staff],
    status_code=HTTP_202_ACCEPTED,
    responses=problem_responses(
        401, 403, 404, 409, s409="The event is not failed or skipped (pending or delivered)"
    ),
)
async def redeliver(
    db_session: NamedDependency[AsyncSession], event_id: FromPath[uuid.UUID]
) -> Delivery:
    """Queues a new delivery of the same event (same ``event_id``, so receivers can deduplicate);
    the event is ``pending`` until the worker has sent it."""
    event = await webhooks.redeliver(db_session, event_id)
    attempts = await webhooks.attempts_of(db_session, [event_id])
    return _delivery(event, attempts.get(event_id, []))


routes: list[Any] = [list_deliveries, redeliver]
