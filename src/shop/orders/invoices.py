"""PDF invoices: a gap-free number per year, a reportlab rendering, storage in PostgreSQL, e-mail.

The invoice job (``orders:generate_invoice``, deferred by the checkout
statement itself, `shop.orders.repositories`, in the order's transaction) runs `issue_invoice` and then `mail_invoice`, each in
its own transaction, so a second run neither renumbers nor re-renders:

* Numbers (``2026-000001``) come from ``invoice_counters``: an upsert that
  increments the year's row and holds its row lock until the transaction that
  stores the invoice commits. A rollback (a crash, or a concurrent run of the
  same job losing the race on ``invoices.order_id``) rolls the increment back
  too, so numbers have no gaps and no duplicates. The price is that invoice
  creation is serialised per year, for the few milliseconds a rendering takes.
* The e-mail is sent after the invoice committed and marked with
  ``emailed_at``; a run that finds the invoice but no ``emailed_at`` only mails.

The queries are `InvoiceRepository`'s (``orders/invoice_repository.py``); nothing here
commits: the task (``orders/tasks.py``) owns each transaction.
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
from shop.orders.invoice_repository import InvoiceRepository
from shop.orders.mailer import Attachment, send_mail
from shop.orders.models import Invoice

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from shop.accounts.security import CurrentUser
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


def invoice_filename(invoice: Invoice) -> str:
    return f"invoice-{invoice.number}.pdf"


async def invoice_for(session: AsyncSession, order_id: int, user: CurrentUser) -> Invoice:
    """The invoice of an order its owner or a staff member asks for; anyone else learns nothing."""
    invoices = InvoiceRepository(session)
    order = await invoices.access(order_id)
    if order is None:
        raise OrderNotFound
    require_owner_or_staff(order[0], user)
    invoice = await invoices.get(order_id)
    if invoice is None:
        imported_at, invoice_requested_at = order[1], order[2]
        if imported_at is not None and invoice_requested_at is None:
            # Not "try again later": nothing will make one unless an operator asks for it.
            raise ImportedOrderHasNoInvoice
        raise InvoiceNotReady
    return invoice


# --- numbering and storing -------------------------------------------------------------------


def format_number(year: int, sequence: int) -> str:
    return f"{year}-{sequence:06d}"


async def issue_invoice(
    session: AsyncSession, order_id: int, settings: JobSettings
) -> Invoice | None:
    """Number, render and insert the invoice of ``order_id`` unless it has one; the caller commits.

    Returns None when the order does not exist, the stored invoice when it has one, and
    otherwise the new invoice (inserted with Core: the returned object is not in the session).
    Without ``SMTP_URL`` "mailing" is the job's log line, which cannot fail, so the invoice
    is stored as mailed in the same transaction and `mail_invoice` has nothing left to do.
    """
    await prepare_fonts()  # before the counter's row lock is taken
    invoices = InvoiceRepository(session)
    issued_at = datetime.now(UTC)
    source = await invoices.take_number(order_id, issued_at.year)
    if source is None:
        return None
    if source.sequence is None:
        return await invoices.get(order_id)
    number = format_number(issued_at.year, source.sequence)
    document = InvoiceDocument(
        shop_name=settings.shop_name,
        seller_address=settings.shop_address,
        currency=settings.currency,
        number=number,
        issued_on=issued_at.date(),
        order_id=order_id,
        order_date=source.created_at.date(),
        customer_name=source.username,
        customer_email=source.email,
        lines=[InvoiceLine(*line) for line in source.lines],
        total=source.total_price,
    )
    invoice = Invoice(
        order_id=order_id,
        number=number,
        pdf=render_invoice_pdf(document),
        emailed_at=None if settings.smtp_url else issued_at,
    )
    await invoices.add(
        order_id=order_id, number=number, pdf=invoice.pdf, emailed_at=invoice.emailed_at
    )
    return invoice


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
