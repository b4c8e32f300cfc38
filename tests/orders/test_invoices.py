"""The invoice job: a PDF a customer can download, numbered without gaps, mailed to them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import multiprocessing
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shop.jobs import run_worker
from shop.orders.invoice_repository import InvoiceIssuing, InvoiceSource
from shop.orders.invoices import (
    InvoiceDocument,
    InvoiceLine,
    issue_invoice,
    mail_invoice,
    render_invoice_pdf,
)
from shop.orders.models import Invoice, Order
from shop.settings import Settings
from shop.tasks import warm_up_cpu_process
from tests.conftest import make_settings, memcached_url
from tests.orders.jobs_support import eventually, jobs, make_order, running_worker
from tests.support.factories import auth_headers, make_user
from tests.support.servers import free_port

NUMBER = re.compile(r"\b\d{4}-\d{6}\b")


def pdf_text(pdf: bytes) -> str:
    """The PDF's text with runs of whitespace (table cells end lines) as single spaces."""
    return " ".join(
        " ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages
    )


async def stored_invoice(db: AsyncSession, order_id: int) -> Invoice | None:
    """The order's invoice once its PDF is stored (it is numbered a moment before)."""
    query = select(Invoice).where(Invoice.order_id == order_id, Invoice.pdf.is_not(None))
    invoice: Invoice | None = await db.scalar(query.execution_options(populate_existing=True))
    return invoice


async def test_order_gets_a_pdf_invoice_with_number_items_and_total(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, worker: None
) -> None:
    customer = await make_user(db, username="ada", email="ada@example.com")
    order = await make_order(
        db,
        customer,
        [("Desk lamp", "24.50", 2), ("Notebook A5", "3.99", 10), ("Chair", "129.00", 1)],
    )

    invoice = await eventually(lambda: stored_invoice(db, order.id))
    response = await client.get(
        f"/api/orders/{order.id}/invoice/", headers=auth_headers(settings, customer)
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert f'filename="invoice-{invoice.number}.pdf"' in response.headers["content-disposition"]
    text = pdf_text(response.content)
    assert re.fullmatch(r"\d{4}-000001", invoice.number)
    assert invoice.number in text
    assert "ada" in text and "ada@example.com" in text
    for line in ("Desk lamp 2 24.50 49.00", "Notebook A5 10 3.99 39.90", "Chair 1 129.00 129.00"):
        assert line in text
    assert "Total 217.90" in text


async def test_a_customer_named_in_cyrillic_finds_their_name_on_the_invoice(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, worker: None
) -> None:
    # The Django app's users write their names in Cyrillic; Helvetica cannot draw it,
    # so this needs the Unicode font the image installs (fonts-dejavu-core).
    customer = await make_user(db, username="Анна_Каренина", email="anna@example.com")
    order = await make_order(db, customer, [("Самовар", "89.00", 1)])

    await eventually(lambda: stored_invoice(db, order.id))
    response = await client.get(
        f"/api/orders/{order.id}/invoice/", headers=auth_headers(settings, customer)
    )

    assert response.status_code == 200
    text = pdf_text(response.content)
    assert "Анна_Каренина" in text
    assert "Самовар" in text


@pytest.mark.parametrize(
    ("who", "job_ran", "status", "detail"),
    [
        ("owner", False, 404, "not been generated yet"),  # too early: say so, not "no order"
        ("stranger", True, 404, "No such order"),  # no one learns the order exists
        ("stranger", False, 404, "No such order"),
        ("staff", True, 200, None),
    ],
)
async def test_who_may_download_an_invoice(
    client: httpx.AsyncClient,
    db: AsyncSession,
    settings: Settings,
    session_maker: Any,
    who: str,
    job_ran: bool,
    status: int,
    detail: str | None,
) -> None:
    owner = await make_user(db)
    order = await make_order(db, owner)
    if job_ran:
        async with running_worker(settings):
            await eventually(lambda: stored_invoice(db, order.id))
    caller = {
        "owner": owner,
        "stranger": await make_user(db),
        "staff": await make_user(db, is_staff=True),
    }[who]

    response = await client.get(
        f"/api/orders/{order.id}/invoice", headers=auth_headers(settings, caller)
    )

    assert response.status_code == status
    if detail is not None:
        assert response.headers["content-type"] == "application/problem+json"
        assert detail in response.json()["detail"]
    else:
        assert response.content.startswith(b"%PDF")


async def test_twenty_concurrent_orders_get_twenty_consecutive_numbers(
    db: AsyncSession, settings: Settings
) -> None:
    customer = await make_user(db)
    orders = [await make_order(db, customer) for _ in range(20)]

    # 20 job slots: the 20 allocations really overlap in PostgreSQL.
    async with running_worker(settings, concurrency=20):

        async def all_numbered() -> list[str] | None:
            numbers = list((await db.scalars(select(Invoice.number))).all())
            return numbers if len(numbers) == len(orders) else None

        numbers = await eventually(all_numbered, timeout=60)

    sequences = sorted(int(number.split("-")[1]) for number in numbers)
    assert sequences == list(range(1, 21))


async def test_numbers_stay_consecutive_with_order_id_gaps_and_out_of_order_issuing(
    db: AsyncSession, session_maker: Any, engine: AsyncEngine, settings: Settings
) -> None:
    customer = await make_user(db)
    first = await make_order(db, customer, with_invoice_job=False)
    # A checkout whose transaction rolled back: its order id is consumed, never used.
    async with session_maker() as rolled_back:
        rolled_back.add(Order(user_id=customer.id, status="pending", total_price=Decimal("9.99")))
        await rolled_back.flush()
        await rolled_back.rollback()
    second = await make_order(db, customer, with_invoice_job=False)
    third = await make_order(db, customer, with_invoice_job=False)
    assert second.id - first.id == 2  # the gap is really there

    # Invoices are issued in another order than the orders were placed (as the job
    # queue may run them), each on an autocommit connection like the invoice job.
    issued: list[tuple[int, str]] = []
    for order in (third, first, second):
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            invoice = await issue_invoice(connection, order.id, settings.jobs)
            assert invoice is not None
            issued.append((order.id, invoice.number))

    year = datetime.now(UTC).year
    assert issued == [
        (third.id, f"{year}-000001"),
        (first.id, f"{year}-000002"),
        (second.id, f"{year}-000003"),
    ]


async def test_running_the_job_twice_keeps_one_invoice_and_one_number(
    db: AsyncSession, settings: Settings, postgres_url: str
) -> None:
    order = await make_order(db, await make_user(db))
    async with running_worker(settings):
        first = await eventually(lambda: stored_invoice(db, order.id))
        from shop.jobs import defer

        await defer(db, "orders:generate_invoice", order_id=order.id)
        await db.commit()

        async def both_done() -> bool:
            rows = await jobs(postgres_url, "orders:generate_invoice")
            return len(rows) == 2 and all(row["status"] == "succeeded" for row in rows)

        await eventually(both_done)

    query = select(Invoice).execution_options(populate_existing=True)
    invoices = list((await db.scalars(query)).all())
    assert [(i.order_id, i.number, i.pdf) for i in invoices] == [
        (order.id, first.number, first.pdf)
    ]


async def test_the_production_worker_renders_invoices_in_its_cpu_process(
    client: httpx.AsyncClient, db: AsyncSession, postgres_url: str, memcached: Any
) -> None:
    settings = make_settings(postgres_url, memcached_url(memcached), JOB_CPU_PROCESSES="1")
    customer = await make_user(db, username="Пётр")
    order = await make_order(db, customer, [("Самовар", "89.00", 2)])
    before = set(multiprocessing.active_children())

    # `shop worker`'s loop: its render process starts with it and loads the font there.
    worker = asyncio.create_task(
        run_worker(settings, install_signal_handlers=False, cpu_initializer=warm_up_cpu_process)
    )
    try:
        await eventually(lambda: stored_invoice(db, order.id))
        renderers = set(multiprocessing.active_children()) - before
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker

    assert len(renderers) == 1
    assert not any(process.is_alive() for process in renderers)  # stopped with the worker
    response = await client.get(
        f"/api/orders/{order.id}/invoice/", headers=auth_headers(settings, customer)
    )
    text = pdf_text(response.content)
    assert "Пётр" in text and "Самовар 2 89.00 178.00" in text


async def number_only(engine: AsyncEngine, order_id: int) -> InvoiceSource:
    """What a job that died between numbering and storing the PDF leaves behind."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        source = await InvoiceIssuing(connection).number(order_id)
    assert source is not None
    assert not source.rendered
    return source


async def test_an_invoice_numbered_but_not_rendered_is_not_ready_until_its_job_runs_again(
    client: httpx.AsyncClient, db: AsyncSession, engine: AsyncEngine, settings: Settings
) -> None:
    owner = await make_user(db)
    order = await make_order(db, owner, [("Desk lamp", "24.50", 1)], with_invoice_job=False)
    next_order = await make_order(db, owner, with_invoice_job=False)
    source = await number_only(engine, order.id)
    url = f"/api/orders/{order.id}/invoice/"

    response = await client.get(url, headers=auth_headers(settings, owner))

    assert response.status_code == 404
    assert "not been generated yet" in response.json()["detail"]
    assert response.headers["retry-after"] == "5"

    # The job runs again (its worker died): it renders the number it took, no new one.
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        again = await issue_invoice(connection, order.id, settings.jobs)
        following = await issue_invoice(connection, next_order.id, settings.jobs)
    assert again is not None and following is not None
    assert again.number == source.number
    assert int(following.number[-6:]) == int(source.number[-6:]) + 1
    response = await client.get(url, headers=auth_headers(settings, owner))
    assert response.status_code == 200
    text = pdf_text(response.content)
    assert source.number in text
    assert f"Invoice date: {source.issued_at.astimezone(UTC).date().isoformat()}" in text
    assert "Desk lamp 1 24.50 24.50" in text


async def test_an_invoice_waiting_for_its_pdf_is_not_mailed(
    db: AsyncSession,
    engine: AsyncEngine,
    postgres_url: str,
    memcached: Any,
    smtp_server: tuple[str, CollectingHandler],
) -> None:
    smtp_url, handler = smtp_server
    settings = make_settings(postgres_url, memcached_url(memcached), SMTP_URL=smtp_url)
    order = await make_order(db, await make_user(db), with_invoice_job=False)
    await number_only(engine, order.id)

    async with engine.connect() as connection:
        session = AsyncSession(bind=connection)
        await mail_invoice(session, settings.jobs, order.id)
        await session.commit()

    assert handler.messages == []
    invoice = await db.scalar(
        select(Invoice)
        .where(Invoice.order_id == order.id)
        .execution_options(populate_existing=True)
    )
    assert invoice is not None and invoice.pdf is None and invoice.emailed_at is None


def test_long_orders_break_across_pages_with_the_total_on_the_last() -> None:
    lines = [InvoiceLine(f"Screw size {n}", n, Decimal("0.25")) for n in range(1, 121)]
    total = sum((line.total for line in lines), Decimal("0"))
    pdf = render_invoice_pdf(
        InvoiceDocument(
            shop_name="shop",
            number="2026-000042",
            issued_on=date(2026, 11, 27),
            order_id=7,
            order_date=date(2026, 11, 26),
            customer_name="ada",
            customer_email="ada@example.com",
            lines=lines,
            total=total,
        )
    )

    pages = [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages]
    assert len(pages) > 1
    assert all("Unit price" in page for page in pages)  # the header repeats on every page
    assert "Screw size 120 120 0.25 30.00" in pages[-1]
    assert f"Total {total:.2f}" in pages[-1]


class CollectingHandler:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, CollectingHandler]]:
    handler = CollectingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", handler
    finally:
        controller.stop()


async def test_invoice_is_mailed_through_smtp_with_the_pdf_attached(
    db: AsyncSession, postgres_url: str, memcached: Any, smtp_server: tuple[str, CollectingHandler]
) -> None:
    smtp_url, handler = smtp_server
    settings = make_settings(
        postgres_url, memcached_url(memcached), SMTP_URL=smtp_url, SHOP_NAME="Corner Shop"
    )
    customer = await make_user(db, email="grace@example.com")
    order = await make_order(db, customer)

    async with running_worker(settings):

        async def mailed() -> Invoice | None:
            invoice = await stored_invoice(db, order.id)
            return invoice if invoice is not None and invoice.emailed_at is not None else None

        invoice = await eventually(mailed)
    await asyncio.sleep(0)

    assert len(handler.messages) == 1
    recipients, message = handler.messages[0]
    assert recipients == ["grace@example.com"]
    assert message["Subject"] == f"Corner Shop: invoice {invoice.number} for order #{order.id}"
    (attachment,) = [part for part in message.walk() if part.get_filename()]
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"invoice-{invoice.number}.pdf"
    assert attachment.get_payload(decode=True) == invoice.pdf


def test_invoice_shows_seller_address_currency_and_cyrillic_names_in_a_few_kilobytes() -> None:
    pdf = render_invoice_pdf(
        InvoiceDocument(
            shop_name="Лавка",
            number="2026-000043",
            issued_on=date(2026, 12, 1),
            order_id=8,
            order_date=date(2026, 11, 30),
            customer_name="Анна Каренина",
            customer_email="anna@example.com",
            lines=[
                InvoiceLine("Чайник", 1, Decimal("25.00")),
                InvoiceLine("Desk lamp", 2, Decimal("24.50")),
                InvoiceLine("Écharpe € edition", 3, Decimal("1.50")),
            ],
            total=Decimal("78.50"),
            seller_address="1 Rue de Rivoli, 75001 Paris, France",
            currency="RUB",
        )
    )

    text = pdf_text(pdf)
    assert "Лавка" in text and "Анна Каренина" in text
    assert "1 Rue de Rivoli, 75001 Paris, France" in text
    assert "Currency: RUB" in text and "Total 78.50 RUB" in text
    assert "Чайник 1 25.00 25.00" in text and "Écharpe € edition 3 1.50 4.50" in text
    # Standard fonts for Latin text, one small embedded subset for the rest (was 44 KB).
    assert len(pdf) <= 8 * 1024
