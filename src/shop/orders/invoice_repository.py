"""Queries of invoices: numbering, storing, reading and marking them e-mailed.

The invoice job runs two of these per order, hundreds a second when checkout is busy
(bench J1), on a connection in AUTOCOMMIT (`InvoiceIssuing`): each statement is its own
transaction and one round trip, no ORM object is loaded or flushed, and each statement is
built once at import (its compiled form is cached; only the parameters change).

1. `InvoiceIssuing.number` takes the year's next number and inserts the invoice row
   without its PDF, in one statement: the counter's row lock is held for that statement
   only, not through the rendering, so a worker's concurrent jobs render side by side.
   Numbering and inserting commit or fail together, so numbers stay gap-free.
2. `InvoiceIssuing.store` puts the rendered PDF on the row, unless another run of the same
   job stored one first.

The request side (`InvoiceRepository`) reads and locks invoices in the caller's session
and never commits: the caller does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from shop.accounts.models import User
from shop.orders.models import Invoice, Order

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

__all__ = [
    "InvoiceAccess",
    "InvoiceIssuing",
    "InvoiceRepository",
    "InvoiceSource",
    "InvoiceToMail",
    "StoredInvoice",
]


@dataclass(frozen=True, slots=True)
class InvoiceSource:
    """What an invoice shows about its order, and the number it was given."""

    created_at: datetime
    total_price: Decimal
    username: str
    email: str
    lines: list[tuple[str, int, Decimal]]
    """(product name, quantity, unit price) in the order's item order."""
    number: str
    issued_at: datetime
    rendered: bool
    """Whether the invoice's PDF is stored already (a run of the job before this one)."""


@dataclass(frozen=True, slots=True)
class StoredInvoice:
    number: str
    pdf: bytes
    emailed_at: datetime | None


# One round trip numbers the order's invoice and reads what it shows. The counter is
# incremented only when the order exists and has no invoice yet (a data-modifying CTE runs
# whether or not its rows are read, hence the `target` guard), and the invoice row is
# inserted in the same statement: the two commit or fail together, so numbers have no gaps.
# The main query sees the invoices as they were before the statement (`v`: a run of this
# job before this one) and the row it inserted through `issued`. Two runs of one job at
# once: the second waits for the first's counter lock, then fails on the invoice's primary
# key, which rolls its increment back too (`number` reads again).
#
# Its commit does not wait for the disk (`synchronous_commit` off for this statement's own
# transaction): the counter's row lock is released at commit, so waiting for the flush
# would hold every other invoice of the year behind it (J1: 241 → see docs/benchmarks.md).
# Nothing is lost: the row has no PDF and no client sees it until `_STORE`, whose commit
# does wait, and a flush reaches every earlier commit. A crash before that loses the number
# together with its counter increment (no gap), and the job runs again.
_NUMBER = text(
    """
    WITH quick AS MATERIALIZED (
        SELECT set_config('synchronous_commit', 'off', true) AS synchronous_commit
    ), target AS MATERIALIZED (
        SELECT o.id FROM orders o, quick
        WHERE o.id = :order_id
          AND NOT EXISTS (SELECT 1 FROM invoices v WHERE v.order_id = o.id)
    ), n AS (
        INSERT INTO invoice_counters (year, last_number)
        SELECT extract(year FROM now() AT TIME ZONE 'UTC')::int, 1 FROM target
        ON CONFLICT (year) DO UPDATE SET last_number = invoice_counters.last_number + 1
        RETURNING year, last_number
    ), issued AS (
        INSERT INTO invoices (order_id, number)
        SELECT :order_id, n.year || '-' || CASE WHEN n.last_number < 1000000
                                                THEN lpad(n.last_number::text, 6, '0')
                                                ELSE n.last_number::text END
        FROM n
        RETURNING number, created_at
    )
    SELECT o.created_at, o.total_price, u.username, u.email,
           i.product_name, i.quantity, i.price_at_purchase,
           coalesce(issued.number, v.number) AS number,
           coalesce(issued.created_at, v.created_at) AS issued_at,
           v.pdf IS NOT NULL AS rendered
    FROM orders o
    JOIN users u ON u.id = o.user_id
    LEFT JOIN invoices v ON v.order_id = o.id
    LEFT JOIN issued ON true
    LEFT JOIN order_items i ON i.order_id = o.id  -- an imported order may have none left
    WHERE o.id = :order_id
    ORDER BY i.id
    """
)

# `pdf IS NULL`: of two runs that both rendered, the first to store wins; the PDFs differ
# only in their creation time.
_STORE = text(
    """
    UPDATE invoices SET pdf = :pdf, emailed_at = :emailed_at
    WHERE order_id = :order_id AND pdf IS NULL
    """
)

_STORED = select(Invoice.number, Invoice.pdf, Invoice.emailed_at)

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


class InvoiceIssuing:
    """The invoice job's statements, on a connection in AUTOCOMMIT (see the module)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def number(self, order_id: int) -> InvoiceSource | None:
        """The order as its invoice shows it, with its invoice numbered (now, or by a run
        of the job before this one). None when the order does not exist."""
        try:
            rows = (await self.connection.execute(_NUMBER, {"order_id": order_id})).all()
        except IntegrityError:
            # A concurrent run of this job numbered it first (and its increment of ours was
            # rolled back with the statement): read what it stored.
            rows = (await self.connection.execute(_NUMBER, {"order_id": order_id})).all()
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
            number=first.number,
            issued_at=first.issued_at,
            rendered=first.rendered,
        )

    async def store(self, order_id: int, pdf: bytes, emailed_at: datetime | None) -> bool:
        """Store the rendering; False when another run of the job stored its own first."""
        result = await self.connection.execute(
            _STORE, {"order_id": order_id, "pdf": pdf, "emailed_at": emailed_at}
        )
        return bool(result.rowcount)

    async def stored(self, order_id: int) -> StoredInvoice:
        row = (await self.connection.execute(_STORED.where(Invoice.order_id == order_id))).one()
        return StoredInvoice(number=row.number, pdf=row.pdf, emailed_at=row.emailed_at)


class InvoiceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, order_id: int) -> Invoice | None:
        """The order's invoice, numbered; its ``pdf`` is None until the job stored it."""
        return await self.session.get(Invoice, order_id)

    async def access(self, order_id: int) -> InvoiceAccess | None:
        """Who owns the order, and whether it was imported (and its invoice asked for)."""
        row = (await self.session.execute(_ACCESS.where(Order.id == order_id))).one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    async def lock_to_mail(self, order_id: int) -> InvoiceToMail | None:
        """The stored invoice and its recipient, its row locked until the transaction ends;
        None while it has no PDF yet (the run of the job that stores it mails it then)."""
        row = (
            await self.session.execute(_TO_MAIL.where(Invoice.order_id == order_id))
        ).one_or_none()
        if row is None or row[1] is None:
            return None
        return (row[0], row[1], row[2], row[3])

    async def mark_emailed(self, order_id: int, at: datetime) -> None:
        await self.session.execute(
            update(Invoice).where(Invoice.order_id == order_id).values(emailed_at=at)
        )
