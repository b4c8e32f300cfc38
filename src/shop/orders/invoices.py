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
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, text, update

from shop.accounts.models import User
from shop.errors import NotFound
from shop.orders.access import require_owner_or_staff
from shop.orders.errors import OrderNotFound
from shop.orders.invoice_pdf import (
    InvoiceDocument,
    InvoiceLine,
    prepare_fonts,
    render_invoice_pdf,
)
from shop.orders.mailer import Attachment, send_mail
from shop.orders.models import Invoice, Order

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
    order = (
        await session.execute(
            select(Order.user_id, Order.imported_at, Order.invoice_requested_at).where(
                Order.id == order_id
            )
        )
    ).one_or_none()
    if order is None:
        raise OrderNotFound
    require_owner_or_staff(order.user_id, user)
    invoice = await session.get(Invoice, order_id)
    if invoice is None:
        if order.imported_at is not None and order.invoice_requested_at is None:
            # Not "try again later": nothing will make one unless an operator asks for it.
            raise ImportedOrderHasNoInvoice
        raise InvoiceNotReady
    return invoice


# --- numbering and storing -------------------------------------------------------------------

# One round trip reads what the invoice shows and takes its number: the counter is
# incremented only when the order exists and has no invoice yet (a data-modifying CTE runs
# whether or not its rows are read, hence the `target` guard). The counter's row lock is then
# held through the rendering until the caller commits, as the gap-free numbering requires.
_ORDER_AND_NUMBER = text(
    """
    WITH target AS MATERIALIZED (
        SELECT o.id FROM orders o
        WHERE o.id = :order_id
          AND NOT EXISTS (SELECT 1 FROM invoices v WHERE v.order_id = o.id)
    ), n AS (
        INSERT INTO invoice_counters (year, last_number)
        SELECT :year, 1 FROM target
        ON CONFLICT (year) DO UPDATE SET last_number = invoice_counters.last_number + 1
        RETURNING last_number
    )
    SELECT o.created_at, o.total_price, u.username, u.email,
           i.product_name, i.quantity, i.price_at_purchase,
           (SELECT last_number FROM n) AS sequence
    FROM orders o
    JOIN users u ON u.id = o.user_id
    LEFT JOIN order_items i ON i.order_id = o.id  -- an imported order may have none left
    WHERE o.id = :order_id
    ORDER BY i.id
    """
)


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
    issued_at = datetime.now(UTC)
    rows = (
        await session.execute(_ORDER_AND_NUMBER, {"order_id": order_id, "year": issued_at.year})
    ).all()
    if not rows:
        return None
    first = rows[0]
    if first.sequence is None:
        return await session.get(Invoice, order_id)
    number = format_number(issued_at.year, first.sequence)
    document = InvoiceDocument(
        shop_name=settings.shop_name,
        seller_address=settings.shop_address,
        currency=settings.currency,
        number=number,
        issued_on=issued_at.date(),
        order_id=order_id,
        order_date=first.created_at.date(),
        customer_name=first.username,
        customer_email=first.email,
        lines=[
            InvoiceLine(row.product_name, row.quantity, row.price_at_purchase)
            for row in rows
            if row.product_name is not None
        ],
        total=first.total_price,
    )
    invoice = Invoice(
        order_id=order_id,
        number=number,
        pdf=render_invoice_pdf(document),
        emailed_at=None if settings.smtp_url else issued_at,
    )
    await session.execute(
        insert(Invoice).values(
            order_id=invoice.order_id,
            number=invoice.number,
            pdf=invoice.pdf,
            emailed_at=invoice.emailed_at,
        )
    )
    return invoice


_INVOICE_TO_MAIL = (
    select(Invoice.number, Invoice.pdf, Invoice.emailed_at, User.email)
    .join(Order, Order.id == Invoice.order_id)
    .join(User, User.id == Order.user_id)
    .with_for_update(of=Invoice)
)


async def mail_invoice(
    session_maker: async_sessionmaker[AsyncSession], settings: JobSettings, order_id: int
) -> None:
    """E-mail the stored invoice to the customer unless that was done already."""
    async with session_maker() as session:
        # The row lock keeps a concurrent run of the same job from mailing twice.
        row = (
            await session.execute(_INVOICE_TO_MAIL.where(Invoice.order_id == order_id))
        ).one_or_none()
        if row is None or row.emailed_at is not None:
            return
        await send_mail(
            settings,
            to=row.email,
            subject=f"{settings.shop_name}: invoice {row.number} for order #{order_id}",
            body=(
                f"Thank you for your order #{order_id}.\n"
                f"Your invoice {row.number} is attached.\n\n{settings.shop_name}\n"
            ),
            attachment=Attachment(filename=f"invoice-{row.number}.pdf", content=row.pdf),
        )
        await session.execute(
            update(Invoice).where(Invoice.order_id == order_id).values(emailed_at=datetime.now(UTC))
        )
        await session.commit()
