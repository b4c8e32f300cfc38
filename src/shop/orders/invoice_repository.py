"""Queries of invoices: numbering, storing, reading and marking them e-mailed.

The invoice job runs one of these per order, thousands a minute when checkout is busy
(bench J1), so its two statements are plain Core run on the session's connection: no ORM
object is loaded or flushed, and each statement is built once at import (its compiled form
is cached; only the parameters change). None of these commits: the task does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, text, update

from shop.accounts.models import User
from shop.orders.models import Invoice, Order

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["InvoiceAccess", "InvoiceRepository", "InvoiceSource", "InvoiceToMail"]


@dataclass(frozen=True, slots=True)
class InvoiceSource:
    """What an invoice shows about its order, and the number it was given."""

    created_at: datetime
    total_price: Decimal
    username: str
    email: str
    lines: list[tuple[str, int, Decimal]]
    """(product name, quantity, unit price) in the order's item order."""
    sequence: int | None
    """The year's next number, taken; None when the order has an invoice already."""


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

_INSERT = insert(Invoice)  # values as parameters on a Core connection: one cached compilation

_ACCESS = select(Order.user_id, Order.imported_at, Order.invoice_requested_at)

_TO_MAIL = (
    select(Invoice.number, Invoice.pdf, Invoice.emailed_at, User.email)
    .join(Order, Order.id == Invoice.order_id)
    .join(User, User.id == Order.user_id)
    .with_for_update(of=Invoice)
)

InvoiceAccess = tuple[int, datetime | None, datetime | None]
"""(owner's user id, imported at, invoice requested at) of an order."""
InvoiceToMail = tuple[str, bytes, datetime | None, str]
"""(number, pdf, emailed at, customer's e-mail) of a stored invoice."""


class InvoiceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def take_number(self, order_id: int, year: int) -> InvoiceSource | None:
        """The order as its invoice shows it, with the year's next number taken (and its
        counter row locked until the transaction ends) unless the order has an invoice.

        None when the order does not exist."""
        connection = await self.session.connection()
        rows = (
            await connection.execute(_ORDER_AND_NUMBER, {"order_id": order_id, "year": year})
        ).all()
        if not rows:
            return None
        first = rows[0]
        return InvoiceSource(
            created_at=first.created_at,
            total_price=first.total_price,
            username=first.username,
            email=first.email,
            lines=[
                (row.product_name, row.quantity, row.price_at_purchase)
                for row in rows
                if row.product_name is not None
            ],
            sequence=first.sequence,
        )

    async def add(
        self, *, order_id: int, number: str, pdf: bytes, emailed_at: datetime | None
    ) -> None:
        connection = await self.session.connection()
        await connection.execute(
            _INSERT,
            {"order_id": order_id, "number": number, "pdf": pdf, "emailed_at": emailed_at},
        )

    async def get(self, order_id: int) -> Invoice | None:
        return await self.session.get(Invoice, order_id)

    async def access(self, order_id: int) -> InvoiceAccess | None:
        """Who owns the order, and whether it was imported (and its invoice asked for)."""
        row = (await self.session.execute(_ACCESS.where(Order.id == order_id))).one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    async def lock_to_mail(self, order_id: int) -> InvoiceToMail | None:
        """The stored invoice and its recipient, its row locked until the transaction ends."""
        row = (
            await self.session.execute(_TO_MAIL.where(Invoice.order_id == order_id))
        ).one_or_none()
        return None if row is None else (row[0], row[1], row[2], row[3])

    async def mark_emailed(self, order_id: int, at: datetime) -> None:
        await self.session.execute(
            update(Invoice).where(Invoice.order_id == order_id).values(emailed_at=at)
        )
