"""Shipped-order webhooks: signed, retried on transient failures, logged, redeliverable."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.jobs import run_worker
from shop.orders.models import Order, OrderStatus, WebhookAttempt, WebhookEvent
from shop.orders.webhooks import enqueue_shipped
from shop.settings import Settings
from tests.conftest import make_settings, memcached_url
from tests.orders.jobs_support import Receiver, eventually, make_order, running_worker
from tests.support.factories import auth_headers, make_user
from tests.support.servers import free_port

SECRET = "whsec-test-secret"
FAST_RETRIES = "0.05,0.1,0.15"
SCHEDULING_SLACK = 0.6


def hook_settings(postgres_url: str, memcached: Any, url: str | None, **env: str) -> Settings:
    overrides = {"WEBHOOK_SECRET": SECRET, "WEBHOOK_RETRY_DELAYS": FAST_RETRIES, **env}
    if url is not None:
        overrides["SHIPPED_WEBHOOK_URL"] = url
    return make_settings(postgres_url, memcached_url(memcached), **overrides)


async def ship(db: AsyncSession, **order_kwargs: Any) -> tuple[Order, uuid.UUID]:
    """An order moved to shipped, its event recorded and deferred in the same transaction."""
    order = await make_order(db, await make_user(db), with_invoice_job=False, **order_kwargs)
    order.status = OrderStatus.SHIPPED
    event_id = await enqueue_shipped(db, order)
    await db.commit()
    return order, event_id


async def settled(db: AsyncSession, event_id: uuid.UUID) -> WebhookEvent | None:
    query = select(WebhookEvent).where(WebhookEvent.event_id == event_id)
    event = await db.scalar(query.execution_options(populate_existing=True))
    return event if event is not None and event.outcome != "pending" else None


async def attempts(db: AsyncSession, event_id: uuid.UUID) -> list[WebhookAttempt]:
    query = select(WebhookAttempt).where(WebhookAttempt.event_id == event_id)
    return list((await db.scalars(query.order_by(WebhookAttempt.attempt))).all())


@pytest.fixture
async def receiver(request: pytest.FixtureRequest) -> AsyncIterator[Receiver]:
    async with Receiver(script=list(getattr(request, "param", [200]))).serving() as running:
        yield running


async def test_receiver_can_verify_signature_and_payload(
    db: AsyncSession, postgres_url: str, memcached: Any, receiver: Receiver
) -> None:
    settings = hook_settings(postgres_url, memcached, receiver.url)
    order, event_id = await ship(db, lines=[("Kettle", "30.25", 2)])

    async with running_worker(settings):
        event = await eventually(lambda: settled(db, event_id))

    assert event.outcome == "delivered"
    (request,) = receiver.requests
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    # What a receiver does: recompute the HMAC of "t.body" and compare in constant time.
    parts = dict(part.split("=", 1) for part in request.headers["shop-signature"].split(","))
    expected = hmac.new(
        SECRET.encode(), parts["t"].encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert json.loads(request.body) == {
        "event_id": str(event_id),
        "order_id": order.id,
        "user_id": order.user_id,
        "status": "shipped",
        "total_amount": "60.50",
    }


@pytest.mark.parametrize(
    ("receiver", "outcome", "statuses"),
    [
        ([200], "delivered", [200]),
        ([204], "delivered", [204]),
        ([500, 500, 200], "delivered", [500, 500, 200]),  # fails twice, then one delivery
        ([429, 200], "delivered", [429, 200]),  # rate limited: retried
        ([500], "failed", [500, 500, 500, 500]),  # first try + 3 retries, all logged
        ([503], "failed", [503, 503, 503, 503]),
        ([400], "failed", [400]),  # the receiver refuses it: retrying cannot help
        ([404], "failed", [404]),
        ([410, 200], "failed", [410]),
    ],
    indirect=["receiver"],
)
async def test_delivery_outcome_and_attempt_log_by_receiver_answer(
    db: AsyncSession,
    postgres_url: str,
    memcached: Any,
    receiver: Receiver,
    outcome: str,
    statuses: list[int],
) -> None:
    settings = hook_settings(postgres_url, memcached, receiver.url)
    _, event_id = await ship(db)

    async with running_worker(settings):
        event = await eventually(lambda: settled(db, event_id))

    assert event.outcome == outcome
    log = await attempts(db, event_id)
    assert [(a.attempt, a.status_code) for a in log] == list(enumerate(statuses, start=1))
    assert log[-1].outcome == outcome
    assert all(a.outcome == "retrying" for a in log[:-1])
    assert len(receiver.requests) == len(statuses)
    assert {json.loads(r.body)["event_id"] for r in receiver.requests} == {str(event_id)}


@pytest.mark.parametrize("receiver", [["hang"]], indirect=True)
async def test_hanging_receiver_times_out_and_is_retried(
    db: AsyncSession, postgres_url: str, memcached: Any, receiver: Receiver
) -> None:
    settings = hook_settings(
        postgres_url, memcached, receiver.url, WEBHOOK_TIMEOUT="0.3", WEBHOOK_RETRY_DELAYS="0.05"
    )
    _, event_id = await ship(db)

    async with running_worker(settings):
        event = await eventually(lambda: settled(db, event_id))

    assert event.outcome == "failed"
    log = await attempts(db, event_id)
    assert [(a.attempt, a.status_code, a.error) for a in log] == [
        (1, None, "timed out after 0.3 s"),
        (2, None, "timed out after 0.3 s"),
    ]


async def test_unreachable_receiver_is_retried_then_failed(
    db: AsyncSession, postgres_url: str, memcached: Any
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    settings = hook_settings(postgres_url, memcached, nobody)
    _, event_id = await ship(db)

    async with running_worker(settings):
        event = await eventually(lambda: settled(db, event_id))

    assert event.outcome == "failed"
    log = await attempts(db, event_id)
    assert len(log) == 4
    assert all(a.status_code is None and "Connect" in (a.error or "") for a in log)


async def test_without_a_url_the_delivery_is_recorded_as_skipped(
    db: AsyncSession, postgres_url: str, memcached: Any
) -> None:
    settings = hook_settings(postgres_url, memcached, None)
    _, event_id = await ship(db)

    async with running_worker(settings):
        event = await eventually(lambda: settled(db, event_id))

    assert event.outcome == "skipped"
    assert [a.outcome for a in await attempts(db, event_id)] == ["skipped"]


async def test_running_the_job_again_does_not_send_a_delivered_event_twice(
    db: AsyncSession, postgres_url: str, memcached: Any, receiver: Receiver
) -> None:
    from shop.jobs import defer

    settings = hook_settings(postgres_url, memcached, receiver.url)
    _, event_id = await ship(db)
    async with running_worker(settings):
        await eventually(lambda: settled(db, event_id))
        await defer(db, "orders:notify_shipped", event_id=str(event_id))
        await db.commit()

        async def second_run_done() -> bool:
            from tests.orders.jobs_support import jobs

            rows = await jobs(postgres_url, "orders:notify_shipped")
            return len(rows) == 2 and all(r["status"] == "succeeded" for r in rows)

        await eventually(second_run_done)

    assert len(receiver.requests) == 1


@pytest.mark.parametrize("receiver", [[410, 200]], indirect=True)
async def test_staff_redeliver_a_failed_event_with_the_same_event_id(
    client: httpx.AsyncClient,
    db: AsyncSession,
    postgres_url: str,
    memcached: Any,
    settings: Settings,
    receiver: Receiver,
) -> None:
    hooks = hook_settings(postgres_url, memcached, receiver.url)
    staff = await make_user(db, is_staff=True)
    _, event_id = await ship(db)
    async with running_worker(hooks):
        await eventually(lambda: settled(db, event_id))

        response = await client.post(
            f"/api/admin/webhooks/deliveries/{event_id}/redeliver/",
            headers=auth_headers(settings, staff),
        )
        assert response.status_code == 202
        assert response.json()["outcome"] == "pending"

        async def delivered() -> WebhookEvent | None:
            event = await settled(db, event_id)
            return event if event is not None and event.outcome == "delivered" else None

        await eventually(delivered)

    assert [r.headers["shop-event-id"] for r in receiver.requests] == [str(event_id)] * 2
    assert [(a.attempt, a.status_code) for a in await attempts(db, event_id)] == [
        (1, 410),
        (2, 200),
    ]


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("delivered", 409),  # already delivered: sending again would be a duplicate
        ("pending", 409),  # a delivery is already queued
        ("failed", 202),
        ("skipped", 202),  # e.g. the URL was configured after the event
    ],
)
async def test_which_events_can_be_redelivered(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, outcome: str, status: int
) -> None:
    staff = await make_user(db, is_staff=True)
    _, event_id = await ship(db)
    event = await db.get_one(WebhookEvent, event_id)
    event.outcome = outcome
    await db.commit()

    response = await client.post(
        f"/api/admin/webhooks/deliveries/{event_id}/redeliver",
        headers=auth_headers(settings, staff),
    )

    assert response.status_code == status


async def test_staff_list_deliveries_filtered_by_order_and_outcome(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    staff = await make_user(db, is_staff=True)
    order, wanted = await ship(db)
    _, other_order_event = await ship(db)
    failed = await db.get_one(WebhookEvent, wanted)
    failed.outcome = "failed"
    await db.commit()
    headers = auth_headers(settings, staff)

    by_order = await client.get(
        f"/api/admin/webhooks/deliveries/?order_id={order.id}", headers=headers
    )
    by_outcome = await client.get("/api/admin/webhooks/deliveries?outcome=pending", headers=headers)
    everything = await client.get("/api/admin/webhooks/deliveries?limit=1", headers=headers)

    assert [d["event_id"] for d in by_order.json()["results"]] == [str(wanted)]
    assert by_order.json()["results"][0]["payload"]["order_id"] == order.id
    assert [d["event_id"] for d in by_outcome.json()["results"]] == [str(other_order_event)]
    assert everything.json()["count"] == 2 and len(everything.json()["results"]) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/admin/webhooks/deliveries"),
        ("POST", f"/api/admin/webhooks/deliveries/{uuid.uuid4()}/redeliver"),
    ],
)
async def test_customers_cannot_see_or_resend_deliveries(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, method: str, path: str
) -> None:
    customer = await make_user(db)

    response = await client.request(method, path, headers=auth_headers(settings, customer))

    assert response.status_code == 403


@pytest.mark.parametrize("receiver", [[500, 500, 200]], indirect=True)
async def test_retries_come_after_their_configured_delays_within_20_percent(
    db: AsyncSession, postgres_url: str, memcached: Any, receiver: Receiver
) -> None:
    settings = hook_settings(postgres_url, memcached, receiver.url, WEBHOOK_RETRY_DELAYS="1,2")
    _, event_id = await ship(db)

    # The production worker loop (`shop worker`), not the test helper's faster polling.
    worker = asyncio.create_task(run_worker(settings, install_signal_handlers=False))
    try:
        event = await eventually(lambda: settled(db, event_id))
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker

    arrivals = [request.at for request in receiver.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert event.outcome == "delivered"
    assert len(gaps) == 2
    # Within 20 % on a quiet machine (polling 0.1 s, delay counted from the attempt); the
    # slack is for a shared CI machine, where the worker may wait for a core. Never early.
    for gap, delay in zip(gaps, (1.0, 2.0), strict=True):
        assert delay * 0.8 <= gap <= delay * 1.2 + SCHEDULING_SLACK, gaps
