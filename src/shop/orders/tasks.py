"""Background jobs of the orders domain: invoice, shipped webhook, and its housekeeping.

Each task takes ids, opens its own session, owns its transaction (the services it calls
never commit) and is safe to run twice (a job whose worker died is run again, see
`shop.jobs`). `shop.tasks.bind_tasks` binds this blueprint under the
``orders`` namespace; the domain defers by name (``orders:generate_invoice``).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import procrastinate
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from shop.jobs import HOUSEKEEPING_QUEUE, resources_of

bp = procrastinate.Blueprint()

logger = logging.getLogger("shop.tasks")


class RetryLater(Exception):
    """The job failed in a way worth another try after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


class RetryWhenAsked(BaseRetryStrategy):
    """Retry only on `RetryLater`, after the delay the task chose from its settings.

    The task decides (it knows ``WEBHOOK_RETRY_DELAYS``, which the decorator, evaluated at
    import, cannot); this strategy only turns its decision into a Procrastinate retry.
    """

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, RetryLater):
            return RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=exception.delay))
        return None


async def warm_up() -> None:
    """Slim and register the invoice font (about a second of CPU, once per process)."""
    from shop.orders.invoice_pdf import prepare_fonts

    await prepare_fonts()


def warm_up_process() -> None:
    """The same in a process of the worker's CPU pool, where invoices are rendered."""
    from shop.orders.invoice_pdf import unicode_font

    unicode_font()


@bp.task(
    name="generate_invoice",
    pass_context=True,
    queue="invoices",
    # Transient failures (database restart, SMTP server down): retried 2, 4, 8 ... 256 s apart.
    retry=procrastinate.RetryStrategy(max_attempts=8, exponential_wait=2),
)
async def generate_invoice(context: procrastinate.JobContext, order_id: int) -> None:
    """Number, render, store and e-mail the invoice of ``order_id`` (see orders/invoices.py)."""
    from shop.orders.invoices import issue_invoice, mail_invoice

    resources = resources_of(context)
    settings = resources.settings.jobs
    async with resources.engine.connect() as connection:
        # Each statement its own transaction: the numbering commits before the rendering.
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        invoice = await issue_invoice(connection, order_id, settings, resources.cpu)
    if invoice is None:
        logger.warning("invoice: order %s does not exist", order_id)
        return
    logger.info(
        "invoice %s stored for order %s (%d bytes)%s",
        invoice.number,
        order_id,
        len(invoice.pdf),
        "" if settings.smtp_url else "; not e-mailed (no SMTP_URL)",
    )
    if invoice.emailed_at is not None:
        return
    async with resources.session_maker() as session:
        await mail_invoice(session, settings, order_id)
        await session.commit()


@bp.task(name="notify_shipped", pass_context=True, queue="webhooks", retry=RetryWhenAsked())
async def notify_shipped(context: procrastinate.JobContext, event_id: str) -> None:
    """Deliver one shipped-order webhook event (see orders/webhooks.py)."""
    from shop.orders.webhooks import RETRYING, deliver

    resources = resources_of(context)
    started = time.monotonic()
    async with resources.session_maker() as session:
        result = await deliver(
            session,
            resources.http,
            resources.settings.jobs,
            uuid.UUID(event_id),
            retries_done=context.job.attempts,
        )
        await session.commit()
    if result.outcome == RETRYING and result.retry_in is not None:
        # The delay counts from the attempt, not from the end of its bookkeeping.
        delay = max(0.0, result.retry_in - (time.monotonic() - started))
        raise RetryLater(f"webhook {event_id} not delivered yet", delay=delay)


@bp.periodic(cron="41 * * * *")
@bp.task(name="purge_idempotency_records", pass_context=True, queue=HOUSEKEEPING_QUEUE)
async def purge_idempotency_records(context: procrastinate.JobContext, timestamp: int) -> None:
    """Hourly: delete Idempotency-Key records older than their 24 h retention (safe to repeat)."""
    from shop.orders.idempotency import RETENTION_HOURS
    from shop.orders.repositories import IdempotencyRepository

    async with resources_of(context).session_maker.begin() as session:
        deleted = await IdempotencyRepository(session).delete_expired(RETENTION_HOURS)
    if deleted:
        logger.info("purged %s expired idempotency records", deleted)


__all__ = [
    "RetryLater",
    "RetryWhenAsked",
    "bp",
    "generate_invoice",
    "notify_shipped",
    "purge_idempotency_records",
    "purge_webhook_attempts",
    "warm_up",
]


@bp.periodic(cron="53 * * * *")
@bp.task(name="purge_webhook_attempts", pass_context=True, queue=HOUSEKEEPING_QUEUE)
async def purge_webhook_attempts(context: procrastinate.JobContext, timestamp: int) -> None:
    """Hourly: delete webhook delivery attempts older than ``WEBHOOK_LOG_RETENTION_DAYS``."""
    from shop.orders.webhooks import purge_attempts

    resources = resources_of(context)
    async with resources.session_maker.begin() as session:
        deleted = await purge_attempts(session, resources.settings.jobs.webhook_log_retention_days)
    if deleted:
        logger.info("purged %s old webhook delivery attempts", deleted)
