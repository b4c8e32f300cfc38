"""Shipped-order webhooks: events recorded with the order change, delivered by a job.

* `enqueue_shipped` records a `WebhookEvent` (stable ``event_id``, outcome
  ``pending``) and defers ``orders:notify_shipped`` in the transition's
  transaction.
* `deliver` (the job) POSTs ``{"event_id","order_id","user_id","status","total_amount"}``
  to ``SHIPPED_WEBHOOK_URL`` with a ``Shop-Signature: t=<unix time>,v1=<hex>``
  header, the HMAC-SHA256 of ``"<t>.<body>"`` keyed by ``WEBHOOK_SECRET``
  (Stripe's scheme: receivers recompute it, compare in constant time and drop
  old timestamps to refuse replays; they drop duplicates by ``event_id``).
* A 2xx is ``delivered``. A timeout, a connection error, a 5xx or a 429 is
  retried after ``WEBHOOK_RETRY_DELAYS`` (default 10, 60, 300 s: three
  retries), then ``failed``. Any other status is ``failed`` at once. No URL
  configured: ``skipped``. Every attempt is a `WebhookAttempt` row.
* Running the job twice is harmless: a settled (delivered, failed, skipped) event
  is not sent again, and every send of an event carries the same ``event_id``.
* Staff can list deliveries and send a failed (or skipped) event again
  (`redeliver`), which defers the job anew for the same event.

The queries are `WebhookRepository`'s (``orders/webhook_repository.py``). Nothing here
commits: the request's session provider or the job's task (``orders/tasks.py``) does.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from shop.errors import Conflict, NotFound
from shop.jobs import defer
from shop.orders.models import WebhookAttempt, WebhookEvent
from shop.orders.webhook_repository import WebhookRepository

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shop.orders.models import Order
    from shop.settings import JobSettings

__all__ = [
    "SHIPPED",
    "SIGNATURE_HEADER",
    "DeliveryNotFound",
    "DeliveryResult",
    "Outcome",
    "deliver",
    "enqueue_shipped",
    "list_deliveries",
    "purge_attempts",
    "redeliver",
    "sign",
]

logger = logging.getLogger("shop.webhooks")

SHIPPED = "order.shipped"
SIGNATURE_HEADER = "Shop-Signature"


class Outcome(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"


RETRYING = "retrying"
"""Outcome of an attempt that failed in a way worth retrying, with a retry left."""


class DeliveryNotFound(NotFound):
    """No webhook event with this id."""


class NotRedeliverable(Conflict):
    """Only a failed or skipped delivery can be sent again."""


async def enqueue_shipped(session: AsyncSession, order: Order) -> uuid.UUID:
    """Record an ``order.shipped`` event for ``order`` and defer its delivery, in one transaction.

    Returns the event id. The caller (the order lifecycle service) must call this in the same
    transaction as the status change; nothing is committed here.
    """
    event_id = uuid.uuid4()
    await WebhookRepository(session).add_event(
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
            outcome=Outcome.PENDING,
        )
    )
    await defer(session, "orders:notify_shipped", event_id=str(event_id))
    return event_id


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Shop-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: str
    """An `Outcome`, or `RETRYING` when the caller should retry after ``retry_in`` seconds."""
    retry_in: float | None = None


async def deliver(
    session: AsyncSession,
    http: httpx.AsyncClient,
    settings: JobSettings,
    event_id: uuid.UUID,
    *,
    retries_done: int,
) -> DeliveryResult:
    """Send the event once and record the attempt in ``session``; the caller commits.

    ``retries_done`` is how often the job retried.
    """
    webhooks = WebhookRepository(session)
    event = await webhooks.get_event(event_id)
    if event is None:
        logger.warning("webhook event %s does not exist; nothing to deliver", event_id)
        return DeliveryResult(Outcome.SKIPPED)
    if event.outcome != Outcome.PENDING:
        # Settled already (a duplicate run); `redeliver` sets it back to pending first.
        return DeliveryResult(event.outcome)
    previous = await webhooks.count_attempts(event_id)
    attempt = WebhookAttempt(event_id=event_id, attempt=previous + 1, duration_ms=0.0)

    retry_in: float | None = None
    url = settings.shipped_webhook_url
    if url is None:
        attempt.outcome = event.outcome = Outcome.SKIPPED
        attempt.error = "SHIPPED_WEBHOOK_URL is not configured"
    else:
        await _post(http, settings, url, event, attempt)
        if attempt.outcome == RETRYING and retries_done >= len(settings.webhook_retry_delays):
            attempt.outcome = Outcome.FAILED
        if attempt.outcome == RETRYING:
            retry_in = settings.webhook_retry_delays[retries_done]
        event.outcome = Outcome.PENDING if attempt.outcome == RETRYING else attempt.outcome
    webhooks.add_attempt(attempt)
    log = logger.info if attempt.outcome in {Outcome.DELIVERED, Outcome.SKIPPED} else logger.warning
    log(
        "webhook %s attempt %d: %s (%s)",
        event_id,
        attempt.attempt,
        attempt.outcome,
        attempt.status_code or attempt.error,
    )
    if attempt.outcome == RETRYING:
        return DeliveryResult(RETRYING, retry_in=retry_in)
    return DeliveryResult(attempt.outcome)


async def _post(
    http: httpx.AsyncClient,
    settings: JobSettings,
    url: str,
    event: WebhookEvent,
    attempt: WebhookAttempt,
) -> None:
    body = json.dumps(
        {"event_id": str(event.event_id), **event.payload}, separators=(",", ":")
    ).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(settings.webhook_secret, body, int(time.time())),
        "Shop-Event-Id": str(event.event_id),
        "Shop-Event-Type": event.kind,
    }
    started = time.perf_counter()
    try:
        response = await http.post(
            url, content=body, headers=headers, timeout=settings.webhook_timeout
        )
    except httpx.TimeoutException:
        attempt.error = f"timed out after {settings.webhook_timeout:g} s"
        attempt.outcome = RETRYING
    except httpx.HTTPError as exc:
        attempt.error = f"{type(exc).__name__}: {exc}"[:1000]
        attempt.outcome = RETRYING
    else:
        attempt.status_code = response.status_code
        if response.is_success:
            attempt.outcome = Outcome.DELIVERED
        elif response.status_code >= 500 or response.status_code == 429:
            attempt.outcome = RETRYING
        else:
            attempt.outcome = Outcome.FAILED
    attempt.duration_ms = (time.perf_counter() - started) * 1000


# --- staff views -------------------------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession,
    *,
    order_id: int | None,
    outcome: Outcome | None,
    limit: int,
    offset: int,
) -> tuple[list[WebhookEvent], list[list[WebhookAttempt]], int]:
    """Events newest first with their attempts in order, and how many events match."""
    conditions = []
    if order_id is not None:
        conditions.append(WebhookEvent.order_id == order_id)
    if outcome is not None:
        conditions.append(WebhookEvent.outcome == outcome)
    webhooks = WebhookRepository(session)
    total = await webhooks.count_events(*conditions)
    events = await webhooks.events(*conditions, limit=limit, offset=offset)
    attempts = await webhooks.attempts_of([event.event_id for event in events])
    return events, [attempts.get(event.event_id, []) for event in events], total


async def deliveries_of_order(
    session: AsyncSession, order_id: int, *, limit: int = 50
) -> list[tuple[WebhookEvent, list[WebhookAttempt]]]:
    """An order's events, newest first, each with its attempts (the order's staff page)."""
    webhooks = WebhookRepository(session)
    events = await webhooks.events(WebhookEvent.order_id == order_id, limit=limit)
    attempts = await webhooks.attempts_of([event.event_id for event in events])
    return [(event, attempts.get(event.event_id, [])) for event in events]


async def count_deliveries(session: AsyncSession, *, outcome: Outcome) -> int:
    """How many events have this outcome (the dashboard's failed deliveries)."""
    return await WebhookRepository(session).count_events(WebhookEvent.outcome == outcome)


async def attempts_of(
    session: AsyncSession, event_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    return await WebhookRepository(session).attempts_of(event_ids)


async def purge_attempts(session: AsyncSession, retention_days: int) -> int:
    """Delete delivery attempts older than ``retention_days``; the events (what was sent and
    how it ended) stay with their order."""
    return await WebhookRepository(session).delete_attempts_older_than(retention_days)


async def redeliver(session: AsyncSession, event_id: uuid.UUID) -> WebhookEvent:
    """Send a failed or skipped event again with the same event id, in the caller's transaction."""
    webhooks = WebhookRepository(session)
    event = await webhooks.get_event(event_id, lock=True)
    if event is None:
        raise DeliveryNotFound
    if event.outcome not in {Outcome.FAILED, Outcome.SKIPPED}:
        raise NotRedeliverable(
            f"Only a failed or skipped delivery can be sent again; this one is {event.outcome}."
        )
    event.outcome = Outcome.PENDING
    await webhooks.refresh(event)  # updated_at is set by the database
    await defer(session, "orders:notify_shipped", event_id=str(event_id))
    return event
