"""The job queue end to end: jobs exist exactly when their transaction committed, checkout and
shipping through the API reach the customer and the receiver, and a job whose worker was killed
mid-run is finished by another worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.orders.models import Invoice, OrderStatus, WebhookEvent
from shop.orders.webhooks import enqueue_shipped
from shop.settings import Settings
from tests.conftest import make_settings, memcached_url
from tests.orders.jobs_support import (
    Receiver,
    enqueue_invoice,
    eventually,
    jobs,
    make_order,
    running_worker,
)
from tests.support.factories import auth_headers, make_product, make_user


async def defer_invoice(db: AsyncSession) -> None:
    order = await make_order(db, await make_user(db), with_invoice_job=False)
    await enqueue_invoice(db, order.id)


async def defer_shipped(db: AsyncSession) -> None:
    order = await make_order(db, await make_user(db), with_invoice_job=False)
    order.status = OrderStatus.SHIPPED
    await enqueue_shipped(db, order)


@pytest.mark.parametrize(
    ("enqueue", "task_name"),
    [
        (defer_invoice, "orders:generate_invoice"),
        (defer_shipped, "orders:notify_shipped"),
    ],
)
@pytest.mark.parametrize(("commit", "expected_jobs"), [(True, 1), (False, 0)])
async def test_a_job_exists_only_if_its_transaction_committed(
    db: AsyncSession,
    postgres_url: str,
    enqueue: Callable[[AsyncSession], Awaitable[None]],
    task_name: str,
    commit: bool,
    expected_jobs: int,
) -> None:
    await enqueue(db)
    if commit:
        await db.commit()
    else:
        await db.rollback()

    assert len(await jobs(postgres_url, task_name)) == expected_jobs


async def test_checkout_and_shipping_through_the_api_reach_customer_and_receiver(
    client: httpx.AsyncClient,
    db: AsyncSession,
    postgres_url: str,
    memcached: Any,
    settings: Settings,
) -> None:
    customer = await make_user(db)
    staff = await make_user(db, is_staff=True)
    product = await make_product(db, name="Teapot", price="19.90", stock=5)
    async with Receiver(script=[200]).serving() as receiver:
        hooks = make_settings(
            postgres_url, memcached_url(memcached), SHIPPED_WEBHOOK_URL=receiver.url
        )
        created = await client.post(
            "/api/orders/",
            json={"items": [{"product_id": product.id, "quantity": 3}]},
            headers=auth_headers(settings, customer),
        )
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]

        async with running_worker(hooks):

            async def invoice() -> httpx.Response | None:
                response = await client.get(
                    f"/api/orders/{order_id}/invoice/", headers=auth_headers(settings, customer)
                )
                return response if response.status_code == 200 else None

            pdf = await eventually(invoice)
            shipped = await client.patch(
                f"/api/orders/{order_id}/",
                json={"status": "shipped"},
                headers=auth_headers(settings, staff),
            )
            assert shipped.status_code == 200, shipped.text

            async def delivered() -> bool:
                query = select(WebhookEvent.outcome).where(WebhookEvent.order_id == order_id)
                return (await db.scalar(query)) == "delivered"

            await eventually(delivered)

    assert pdf.content.startswith(b"%PDF")
    (request,) = receiver.requests
    body = json.loads(request.body)
    assert (body["order_id"], body["status"], body["total_amount"]) == (
        order_id,
        "shipped",
        "59.70",
    )


async def test_failed_checkout_leaves_no_invoice_job(
    client: httpx.AsyncClient, db: AsyncSession, postgres_url: str, settings: Settings
) -> None:
    customer = await make_user(db)
    product = await make_product(db, price="10.00", stock=1)

    response = await client.post(
        "/api/orders/",
        json={"items": [{"product_id": product.id, "quantity": 2}]},
        headers=auth_headers(settings, customer),
    )

    assert response.status_code == 409
    assert response.json()["shortages"] == [
        {"product_id": product.id, "name": product.name, "requested": 2, "available": 1}
    ]
    assert await jobs(postgres_url) == []


STALLED_AFTER = 20  # the smallest JOB_STALLED_AFTER_SECONDS (workers beat every 5 s)


async def test_job_of_a_killed_worker_is_completed_by_another_worker(
    db: AsyncSession, postgres_url: str, memcached: Any
) -> None:
    # The receiver hangs on the first request, so the first worker is mid-delivery when killed.
    async with Receiver(script=["hang", 200]).serving() as receiver:
        env = {
            **os.environ,
            "SECRET_KEY": "test-secret-key-that-is-long-enough",
            "DATABASE_URL": postgres_url,
            "MEMCACHED_URL": memcached_url(memcached),
            "SHIPPED_WEBHOOK_URL": receiver.url,
            "WEBHOOK_TIMEOUT": "600",
            "JOB_STALLED_AFTER_SECONDS": str(STALLED_AFTER),
            "JSON_LOGS": "false",
        }
        doomed = subprocess.Popen(
            [sys.executable, "-m", "shop.cli", "worker", "--concurrency", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            order = await make_order(db, await make_user(db), with_invoice_job=False)
            order.status = OrderStatus.SHIPPED
            event_id = await enqueue_shipped(db, order)
            await db.commit()

            async def mid_delivery() -> bool:
                rows = await jobs(postgres_url, "orders:notify_shipped")
                return bool(receiver.requests) and rows[0]["status"] == "doing"

            await eventually(mid_delivery)
        finally:
            doomed.send_signal(signal.SIGKILL)
            await asyncio.to_thread(doomed.wait)
        killed_at = time.monotonic()

        survivor = make_settings(
            postgres_url,
            memcached_url(memcached),
            SHIPPED_WEBHOOK_URL=receiver.url,
            JOB_STALLED_AFTER_SECONDS=str(STALLED_AFTER),
        )
        async with running_worker(survivor):

            async def delivered() -> WebhookEvent | None:
                query = select(WebhookEvent).where(WebhookEvent.event_id == event_id)
                event = await db.scalar(query.execution_options(populate_existing=True))
                return event if event is not None and event.outcome == "delivered" else None

            await eventually(delivered, timeout=60)
            taken_over_after = time.monotonic() - killed_at

    (job,) = await jobs(postgres_url, "orders:notify_shipped")
    assert job["status"] == "succeeded"
    # Taken over within JOB_STALLED_AFTER_SECONDS of the kill (plus a little for a busy machine).
    assert taken_over_after < STALLED_AFTER + 3
    # The same event went out twice (killed mid-request, then completed): same id both times.
    assert [r.headers["shop-event-id"] for r in receiver.requests] == [str(event_id)] * 2


async def test_invoice_job_run_twice_concurrently_makes_one_invoice(
    db: AsyncSession, settings: Settings, postgres_url: str
) -> None:
    order = await make_order(db, await make_user(db))
    from shop.jobs import defer

    for _ in range(3):
        await defer(db, "orders:generate_invoice", order_id=order.id)
    await db.commit()

    async with running_worker(settings, concurrency=4):

        async def all_done() -> bool:
            rows = await jobs(postgres_url, "orders:generate_invoice")
            return all(row["status"] == "succeeded" for row in rows)

        await eventually(all_done)

    numbers = (await db.scalars(select(Invoice.number))).all()
    assert len(numbers) == 1
    assert numbers[0].endswith("-000001")  # the losers' increments were rolled back: no gap
