"""Helpers for the background-job tests: orders arranged in the database, a worker with
test settings, a scriptable HTTP receiver, and polling until the queue has done its work."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.jobs import defer
from shop.orders.models import Order, OrderItem, OrderStatus
from shop.settings import Settings
from tests.support.factories import make_product

T = TypeVar("T")


async def enqueue_invoice(db: AsyncSession, order_id: int) -> int:
    """Defer an order's invoice job in ``db``'s transaction, as the checkout statement does."""
    return await defer(db, "orders:generate_invoice", order_id=order_id)


Line = tuple[str, str, int]
"""(product name, unit price, quantity)."""


async def make_order(
    db: AsyncSession,
    user: User,
    lines: Sequence[Line] = (("Desk lamp", "24.50", 2),),
    *,
    status: str = OrderStatus.PENDING,
    with_invoice_job: bool = True,
) -> Order:
    """Insert an order with its items (and, like checkout, its invoice job) and commit."""
    products = [await make_product(db, name=name, price=Decimal(price)) for name, price, _ in lines]
    order = Order(
        user_id=user.id,
        status=status,
        total_price=sum((Decimal(price) * qty for _, price, qty in lines), Decimal("0.00")),
    )
    db.add(order)
    await db.flush()
    db.add_all(
        OrderItem(
            order_id=order.id,
            product_id=product.id,
            product_name=name,
            product_category=product.category,
            price_at_purchase=Decimal(price),
            quantity=qty,
        )
        for product, (name, price, qty) in zip(products, lines, strict=True)
    )
    if with_invoice_job:
        await enqueue_invoice(db, order.id)
    await db.commit()
    await db.refresh(order)
    return order


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, *, concurrency: int = 4) -> AsyncIterator[None]:
    """A real Procrastinate worker in this event loop that polls often, so scheduled retries
    (which Procrastinate does not announce with NOTIFY) start within a fraction of a second."""
    from shop.jobs import open_worker_app

    async def run() -> None:
        async with open_worker_app(settings) as (job_app, resources):
            await job_app.run_worker_async(
                concurrency=concurrency,
                additional_context={"resources": resources},
                install_signal_handlers=False,
                fetch_job_polling_interval=0.1,
                update_heartbeat_interval=1.0,
                stalled_worker_timeout=float(settings.jobs.stalled_after_seconds),
            )

    task = asyncio.create_task(run())
    await asyncio.sleep(0.2)
    if task.done():
        task.result()
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0) -> T:
    """Poll ``check`` until it returns something truthy; fail with what it last returned."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


async def jobs(postgres_url: str, task_name: str | None = None) -> list[dict[str, Any]]:
    """Rows of procrastinate_jobs (id, task_name, status, args, attempts), oldest first."""
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch(
            "SELECT id, task_name, status::text AS status, args::text AS args, attempts "
            "FROM procrastinate_jobs WHERE $1::text IS NULL OR task_name = $1 ORDER BY id",
            task_name,
        )
    finally:
        await conn.close()
    return [dict(row) for row in rows]


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    """When it arrived (time.monotonic)."""


@dataclass
class Receiver:
    """A local HTTP server answering each request with the next scripted reply.

    A reply is a status code or ``"hang"`` (never answer). When the script runs out, the
    last reply repeats.
    """

    script: list[int | str]
    requests: list[ReceivedRequest] = field(default_factory=list)
    port: int = 0
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/shipped"

    def _next_reply(self) -> int | str:
        index = min(len(self.requests) - 1, len(self.script) - 1)
        return self.script[index]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(ReceivedRequest(method, path, headers, body))
            reply = self._next_reply()
            if reply == "hang":
                await asyncio.sleep(3600)
            status_line = f"HTTP/1.1 {reply} Scripted\r\n"
            writer.write(status_line.encode() + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Receiver]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._handlers):
                task.cancel()
            await server.wait_closed()
