"""PDF invoices: a gap-free number per year, a reportlab rendering, storage in PostgreSQL, e-mail.

The invoice job (``orders:generate_invoice``, deferred by the checkout
statement itself, `shop.orders.stock`, in the order's transaction) runs `issue_invoice`
and then `mail_invoice`, so a second run neither renumbers nor re-renders:

* Numbers (``2026-000001``) come from ``invoice_counters``. One autocommit statement
  increments the year's row and inserts the invoice row with that number and no PDF yet
  (`InvoiceIssuing.number`): a failure (a crash, or a concurrent run of the same job losing
  the race on ``invoices.order_id``) rolls both back, so numbers have no gaps and no
  duplicates. The counter's row lock is held for that one statement, not through the
  rendering: invoice creation is serialised per year for well under a millisecond.
* The PDF is rendered with no lock held and stored on the row (`InvoiceIssuing.store`).
  Until then the invoice is "not ready" to its downloads and its e-mail; a job that died in
  between is run again, finds its number and renders it (the invoice's date is the row's).
* The e-mail is sent after the PDF is stored and marked with ``emailed_at``; a run that
  finds the invoice but no ``emailed_at`` only mails.

The queries are in ``orders/invoice_repository.py``; nothing here commits: the task
(``orders/tasks.py``) owns each connection and transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shop.errors import NotFound
from shop.orders.access import require_owner_or_staff
from shop.orders.errors import OrderNotFound
from shop.orders.invoice_pdf import (
    InvoiceDocument,
    InvoiceLine,
    prepare_fonts,
    render_invoice_pdf,
)
from shop.orders.invoice_repository import InvoiceIssuing, InvoiceRepository, StoredInvoice
from shop.orders.mailer import Attachment, send_mail

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    from shop.accounts.security import CurrentUser
    from shop.cpu import CpuPool
    from shop.settings import JobSettings

__all__ = [
    "ImportedOrderHasNoInvoice",
    "InvoiceDocument",
    "InvoiceLine",
    "InvoiceNotReady",
    "OrderNotFound",
    "invoice_filename",
    "invoice_for",
    "issue_invoice",
    "mail_invoice",
    "render_invoice_pdf",
]

logger = logging.getLogger("shop.invoices")


class InvoiceNotReady(NotFound):
    """The invoice of this order has not been generated yet; try again in a few seconds."""

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": "5"})
        super().__init__(detail, **kwargs)


class ImportedOrderHasNoInvoice(NotFound):
    """This order was imported from the previous (Django) shop, which kept no invoices; none has been issued for it."""


def invoice_filename(invoice: StoredInvoice) -> str:
    return f"invoice-{invoice.number}.pdf"


async def invoice_for(session: AsyncSession, order_id: int, user: CurrentUser) -> StoredInvoice:
    """The invoice of an order its owner or a staff member asks for; anyone else learns nothing."""
    invoices = InvoiceRepository(session)
    order = await invoices.access(order_id)
    if order is None:
        raise OrderNotFound
    require_owner_or_staff(order[0], user)
    invoice = await invoices.get(order_id)
    if invoice is None or invoice.pdf is None:
        imported_at, invoice_requested_at = order[1], order[2]
        if imported_at is not None and invoice_requested_at is None:
            # Not "try again later": nothing will make one unless an operator asks for it.
            raise ImportedOrderHasNoInvoice
        raise InvoiceNotReady
    return StoredInvoice(number=invoice.number, pdf=invoice.pdf, emailed_at=invoice.emailed_at)


# --- numbering and storing -------------------------------------------------------------------


async def issue_invoice(
    connection: AsyncConnection, order_id: int, settings: JobSettings, cpu: CpuPool | None = None
) -> StoredInvoice | None:
    """Number, render and store the invoice of ``order_id`` unless it has one.

    ``connection`` is in AUTOCOMMIT: each step commits on its own (see the module). The PDF
    is rendered in one of ``cpu``'s processes (the worker's), inline without one.
    Returns None when the order does not exist, and otherwise the order's invoice as stored.
    Without ``SMTP_URL`` "mailing" is the job's log line, which cannot fail, so the invoice
    is stored as mailed and `mail_invoice` has nothing left to do.
    """
    if not (cpu and cpu.processes):
        await prepare_fonts()  # rendered here: once per process, in a thread, off the loop
    issuing = InvoiceIssuing(connection)
    source = await issuing.number(order_id)
    if source is None:
        return None
    if source.rendered:
        return await issuing.stored(order_id)
    document = InvoiceDocument(
        shop_name=settings.shop_name,
        seller_address=settings.shop_address,
        currency=settings.currency,
        number=source.number,
        issued_on=source.issued_at.astimezone(UTC).date(),
        order_id=order_id,
        order_date=source.created_at.date(),
        customer_name=source.username,
        customer_email=source.email,
        lines=[InvoiceLine(*line) for line in source.lines],
        total=source.total_price,
    )
    pdf = await cpu.run(render_invoice_pdf, document) if cpu else render_invoice_pdf(document)
    emailed_at = None if settings.smtp_url else datetime.now(UTC)
    if await issuing.store(order_id, pdf, emailed_at):
        return StoredInvoice(number=source.number, pdf=pdf, emailed_at=emailed_at)
    return await issuing.stored(order_id)


async def mail_invoice(session: AsyncSession, settings: JobSettings, order_id: int) -> None:
    """E-mail the stored invoice to the customer unless that was done already; the caller
    commits (which releases the invoice's row lock)."""
    invoices = InvoiceRepository(session)
    # The row lock keeps a concurrent run of the same job from mailing twice.
    row = await invoices.lock_to_mail(order_id)
    if row is None:
        return
    number, pdf, emailed_at, email = row
    if emailed_at is not None:
        return
    await send_mail(
        settings,
        to=email,
        subject=f"{settings.shop_name}: invoice {number} for order #{order_id}",
        body=(
            f"Thank you for your order #{order_id}.\n"
            f"Your invoice {number} is attached.\n\n{settings.shop_name}\n"
        ),
        attachment=Attachment(filename=f"invoice-{number}.pdf", content=pdf),
    )
    await invoices.mark_emailed(order_id, datetime.now(UTC))
