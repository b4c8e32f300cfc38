"""PDF invoices: a gap-free number per year, a reportlab rendering, storage in PostgreSQL, e-mail.

The invoice job (``orders:generate_invoice``, deferred by `enqueue_invoice` in
the order's transaction) runs `issue_invoice` and then `mail_invoice`, each in
its own transaction, so a second run neither renumbers nor re-renders:

* Numbers (``2026-000001``) come from ``invoice_counters``: an upsert that
  increments the year's row and holds its row lock until the transaction that
  stores the invoice commits. A rollback (a crash, or a concurrent run of the
  same job losing the race on ``invoices.order_id``) rolls the increment back
  too, so numbers have no gaps and no duplicates. The price is that invoice
  creation is serialised per year, for the few milliseconds a rendering takes.
* The e-mail is sent after the invoice committed and marked with
  ``emailed_at``; a run that finds the invoice but no ``emailed_at`` only mails.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text
from sqlalchemy.orm import selectinload

from shop.accounts.models import User
from shop.errors import NotFound
from shop.jobs import defer
from shop.orders.invoice_pdf import InvoiceDocument, InvoiceLine, render_invoice_pdf
from shop.orders.mailer import Attachment, send_mail
from shop.orders.models import Invoice, Order

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from shop.accounts.security import CurrentUser
    from shop.settings import JobSettings

__all__ = [
    "InvoiceDocument",
    "InvoiceLine",
    "InvoiceNotReady",
    "OrderNotFound",
    "enqueue_invoice",
    "invoice_filename",
    "invoice_for",
    "issue_invoice",
    "mail_invoice",
    "render_invoice_pdf",
]

logger = logging.getLogger("shop.invoices")


class OrderNotFound(NotFound):
    """No such order."""


class InvoiceNotReady(NotFound):
    """The invoice of this order has not been generated yet; try again in a few seconds."""

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": "5"})
        super().__init__(detail, **kwargs)


async def enqueue_invoice(session: AsyncSession, order_id: int) -> int:
    """Defer the invoice job of ``order_id`` in the caller's transaction (the order's creation)."""
    return await defer(session, "orders:generate_invoice", order_id=order_id)


def invoice_filename(invoice: Invoice) -> str:
    return f"invoice-{invoice.number}.pdf"


async def invoice_for(session: AsyncSession, order_id: int, user: CurrentUser) -> Invoice:
    """The invoice of an order its owner or a staff member asks for; anyone else learns nothing."""
    owner_id = await session.scalar(select(Order.user_id).where(Order.id == order_id))
    if owner_id is None or (owner_id != user.id and not user.is_staff):
        raise OrderNotFound
    invoice = await session.get(Invoice, order_id)
    if invoice is None:
        raise InvoiceNotReady
    return invoice


# --- numbering and storing -------------------------------------------------------------------

_NEXT_NUMBER = text(
    "INSERT INTO invoice_counters (year, last_number) VALUES (:year, 1) "
    "ON CONFLICT (year) DO UPDATE SET last_number = invoice_counters.last_number + 1 "
    "RETURNING last_number"
)


def format_number(year: int, sequence: int) -> str:
    return f"{year}-{sequence:06d}"


async def issue_invoice(
    session: AsyncSession, order_id: int, settings: JobSettings
) -> Invoice | None:
    """Number, render and add the invoice of ``order_id`` unless it has one; the caller commits.

    Returns None when the order does not exist.
    """
    existing = await session.get(Invoice, order_id)
    if existing is not None:
        return existing
    order = await session.scalar(
        select(Order).where(Order.id == order_id).options(selectinload(Order.items))
    )
    if order is None:
        return None
    customer = await session.get_one(User, order.user_id)
    issued_at = datetime.now(UTC)
    sequence = (await session.execute(_NEXT_NUMBER, {"year": issued_at.year})).scalar_one()
    number = format_number(issued_at.year, sequence)
    document = InvoiceDocument(
        shop_name=settings.shop_name,
        seller_address=settings.shop_address,
        currency=settings.currency,
        number=number,
        issued_on=issued_at.date(),
        order_id=order.id,
        order_date=order.created_at.date(),
        customer_name=customer.username,
        customer_email=customer.email,
        lines=[
            InvoiceLine(item.product_name, item.quantity, item.price_at_purchase)
            for item in order.items
        ],
        total=order.total_price,
    )
    invoice = Invoice(order_id=order.id, number=number, pdf=render_invoice_pdf(document))
    session.add(invoice)
    await session.flush()
    return invoice


async def mail_invoice(
    session_maker: async_sessionmaker[AsyncSession], settings: JobSettings, order_id: int
) -> None:
    """E-mail the stored invoice to the customer unless that was done already."""
    async with session_maker() as session:
        invoice = await session.get(Invoice, order_id, with_for_update=True)
        if invoice is None or invoice.emailed_at is not None:
            return
        recipient = await session.scalar(
            select(User.email).join(Order, Order.user_id == User.id).where(Order.id == order_id)
        )
        if recipient is None:
            return
        # The row lock keeps a concurrent run of the same job from mailing twice.
        await send_mail(
            settings,
            to=recipient,
            subject=f"{settings.shop_name}: invoice {invoice.number} for order #{order_id}",
            body=(
                f"Thank you for your order #{order_id}.\n"
                f"Your invoice {invoice.number} is attached.\n\n{settings.shop_name}\n"
            ),
            attachment=Attachment(filename=invoice_filename(invoice), content=invoice.pdf),
        )
        invoice.emailed_at = datetime.now(UTC)
        await session.commit()
