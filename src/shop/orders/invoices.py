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

import io
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy import select, text
from sqlalchemy.orm import selectinload

from shop.accounts.models import User
from shop.errors import NotFound
from shop.orders.mailer import Attachment, send_mail
from shop.orders.models import Invoice, Order
from shop.schemas import money

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from shop.accounts.security import CurrentUser
    from shop.settings import JobSettings

__all__ = [
    "ImportedOrderHasNoInvoice",
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


class ImportedOrderHasNoInvoice(NotFound):
    """This order was imported from the previous (Django) shop, which kept no invoices; none has been issued for it."""


async def enqueue_invoice(session: AsyncSession, order_id: int) -> int:
    """Defer the invoice job of ``order_id`` in the caller's transaction (the order's creation)."""
    from shop.jobs import defer
    from shop.orders.tasks import generate_invoice

    return await defer(session, generate_invoice, order_id=order_id)


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
    if order is None or (order.user_id != user.id and not user.is_staff):
        raise OrderNotFound
    invoice = await session.get(Invoice, order_id)
    if invoice is None:
        if order.imported_at is not None and order.invoice_requested_at is None:
            # Not "try again later": nothing will make one unless an operator asks for it.
            raise ImportedOrderHasNoInvoice
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


async def issue_invoice(session: AsyncSession, order_id: int, shop_name: str) -> Invoice | None:
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
        shop_name=shop_name,
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


# --- rendering ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    name: str
    quantity: int
    unit_price: Decimal

    @property
    def total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    shop_name: str
    number: str
    issued_on: date
    order_id: int
    order_date: date
    customer_name: str
    customer_email: str
    lines: list[InvoiceLine]
    total: Decimal


_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


def _fonts() -> tuple[str, str]:
    """A Unicode TrueType font if the system has one (names in any script), else Helvetica."""
    if "ShopSans" in pdfmetrics.getRegisteredFontNames():
        return "ShopSans", "ShopSans-Bold"
    for candidate in _FONT_CANDIDATES:
        regular = Path(candidate)
        bold = regular.with_name("DejaVuSans-Bold.ttf")
        if regular.exists() and bold.exists():
            pdfmetrics.registerFont(TTFont("ShopSans", str(regular)))
            pdfmetrics.registerFont(TTFont("ShopSans-Bold", str(bold)))
            return "ShopSans", "ShopSans-Bold"
    return "Helvetica", "Helvetica-Bold"


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_invoice_pdf(document: InvoiceDocument) -> bytes:
    """An A4 invoice; the items table breaks across pages and repeats its header on each."""
    regular, bold = _fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=10, leading=13)
    right = ParagraphStyle("right", parent=body, alignment=TA_RIGHT)
    title = ParagraphStyle("title", parent=body, fontName=bold, fontSize=20, leading=24)
    heading = ParagraphStyle("heading", parent=body, fontName=bold, fontSize=14, leading=18)

    buffer = io.BytesIO()
    pdf = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=20 * mm,
        title=f"Invoice {document.number}",
        author=document.shop_name,
    )

    header = Table(
        [
            [
                Paragraph(_escape(document.shop_name), title),
                Paragraph(f"Invoice {document.number}", heading),
            ],
            [
                Paragraph(
                    f"<b>Bill to</b><br/>{_escape(document.customer_name)}<br/>"
                    f"{_escape(document.customer_email)}",
                    body,
                ),
                Paragraph(
                    f"Invoice date: {document.issued_on.isoformat()}<br/>"
                    f"Order: #{document.order_id}<br/>"
                    f"Order date: {document.order_date.isoformat()}",
                    right,
                ),
            ],
        ],
        colWidths=[pdf.width * 0.55, pdf.width * 0.45],
    )
    header.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("BOTTOMPADDING", (0, 0), (-1, 0), 10),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )

    rows: list[list[Any]] = [["Item", "Quantity", "Unit price", "Line total"]]
    for line in document.lines:
        rows.append(
            [
                Paragraph(_escape(line.name), body),
                str(line.quantity),
                money(line.unit_price),
                money(line.total),
            ]
        )
    rows.append(["", "", "Total", money(document.total)])
    items = Table(
        rows,
        colWidths=[pdf.width * 0.52, pdf.width * 0.14, pdf.width * 0.17, pdf.width * 0.17],
        repeatRows=1,
    )
    items.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), regular),
                ("FONTNAME", (0, 0), (-1, 0), bold),
                ("FONTNAME", (0, -1), (-1, -1), bold),
                ("FONTSIZE", (0, 0), (-1, -1), 10),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
                ("LINEBELOW", (0, 1), (-1, -2), 0.25, colors.lightgrey),
                ("LINEABOVE", (2, -1), (-1, -1), 0.8, colors.black),
                ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
            ]
        )
    )

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(regular, 8)
        canvas.drawString(
            pdf.leftMargin, 10 * mm, f"{document.shop_name} - invoice {document.number}"
        )
        canvas.drawRightString(pdf.leftMargin + pdf.width, 10 * mm, f"Page {doc.page}")
        canvas.restoreState()

    pdf.build([header, Spacer(1, 10 * mm), items], onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
