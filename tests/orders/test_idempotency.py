"""Idempotency-Key on order creation: replays, mismatches, concurrent duplicates, failed tries."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shop.settings import Settings
from tests.orders.helpers import count, jobs, place_order, stock_of
from tests.support.factories import make_product, make_user


async def test_replay_returns_the_first_response_and_creates_nothing(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    product = await make_product(db, stock=5)
    first = await place_order(client, settings, user, (product.id, 2), **{"Idempotency-Key": "k-1"})

    again = await place_order(client, settings, user, (product.id, 2), **{"Idempotency-Key": "k-1"})

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert "idempotent-replayed" not in first.headers  # only a replay says it is one
    assert again.headers.get("idempotent-replayed") == "true"
    assert await stock_of(db, product.id) == 3
    assert await count(db, "orders") == 1
    assert len(await jobs(db, "orders:generate_invoice")) == 1


async def test_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    product = await make_product(db, stock=5)
    await place_order(client, settings, user, (product.id, 2), **{"Idempotency-Key": "k-1"})

    response = await place_order(
        client, settings, user, (product.id, 3), **{"Idempotency-Key": "k-1"}
    )

    assert response.status_code == 422
    assert "already used with a different request body" in response.json()["detail"]
    assert await stock_of(db, product.id) == 3
    assert await count(db, "orders") == 1


async def test_keys_are_scoped_to_the_user(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    alice, bob = await make_user(db), await make_user(db)
    product = await make_product(db, stock=5)
    await place_order(client, settings, alice, (product.id, 1), **{"Idempotency-Key": "shared"})

    response = await place_order(
        client, settings, bob, (product.id, 1), **{"Idempotency-Key": "shared"}
    )

    assert response.status_code == 201
    assert response.json()["user"] == bob.id
    assert await count(db, "orders") == 2


async def test_concurrent_duplicates_create_one_order_and_the_rest_get_409_or_the_replay(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    product = await make_product(db, stock=100)

    responses = await asyncio.gather(
        *(
            place_order(client, settings, user, (product.id, 1), **{"Idempotency-Key": "dup"})
            for _ in range(20)
        )
    )

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, statuses
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1
    assert await count(db, "orders") == 1
    assert await stock_of(db, product.id) == 99


async def test_failed_first_attempt_stores_nothing_so_a_retry_can_succeed(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    product = await make_product(db, stock=1)
    failed = await place_order(
        client, settings, user, (product.id, 2), **{"Idempotency-Key": "retry"}
    )
    await db.execute(text("UPDATE products SET stock = 2 WHERE id = :id"), {"id": product.id})
    await db.commit()

    retried = await place_order(
        client, settings, user, (product.id, 2), **{"Idempotency-Key": "retry"}
    )

    assert (failed.status_code, retried.status_code) == (409, 201)
    assert await stock_of(db, product.id) == 0
    assert await count(db, "idempotency_records") == 1


@pytest.mark.parametrize(
    ("age", "status", "stock"),
    [
        (timedelta(hours=24, minutes=1), 201, 2),  # past the 24 hours: the key runs afresh
        (timedelta(hours=23, minutes=59), 422, 4),  # still kept: another body is refused
    ],
)
async def test_a_key_is_kept_for_24_hours(
    client: httpx.AsyncClient,
    settings: Settings,
    db: AsyncSession,
    age: timedelta,
    status: int,
    stock: int,
) -> None:
    user = await make_user(db)
    product = await make_product(db, stock=5)
    await place_order(client, settings, user, (product.id, 1), **{"Idempotency-Key": "old"})
    await db.execute(
        text("UPDATE idempotency_records SET created_at = now() - CAST(:age AS interval)"),
        {"age": age},
    )
    await db.commit()

    response = await place_order(
        client, settings, user, (product.id, 2), **{"Idempotency-Key": "old"}
    )

    assert response.status_code == status
    assert await stock_of(db, product.id) == stock


async def test_unusable_key_is_400(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    product = await make_product(db, stock=5)

    response = await place_order(
        client, settings, user, (product.id, 1), **{"Idempotency-Key": "x" * 256}
    )

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["Idempotency-Key"]
    assert await count(db, "orders") == 0


async def test_duplicate_while_the_first_is_in_flight_gets_409_without_waiting(
    client: httpx.AsyncClient, settings: Settings, db: AsyncSession
) -> None:
    user = await make_user(db)
    product = await make_product(db, stock=5)
    # Hold the product row so the first request stalls inside its transaction.
    await db.execute(text("SELECT 1 FROM products WHERE id = :id FOR UPDATE"), {"id": product.id})
    first = asyncio.create_task(
        place_order(client, settings, user, (product.id, 1), **{"Idempotency-Key": "busy"})
    )
    while not await _someone_waits_for_a_lock(db):
        await asyncio.sleep(0.01)

    duplicate = await place_order(
        client, settings, user, (product.id, 1), **{"Idempotency-Key": "busy"}
    )
    await db.commit()  # let the first one finish
    original = await first

    assert duplicate.status_code == 409
    assert duplicate.headers["retry-after"] == "1"
    assert "still being processed" in duplicate.json()["detail"]
    assert original.status_code == 201
    assert await count(db, "orders") == 1


async def _someone_waits_for_a_lock(db: AsyncSession) -> bool:
    await db.execute(text("SELECT pg_stat_clear_snapshot()"))  # stats are cached per transaction
    waiting = await db.scalar(
        text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
    )
    return bool(waiting)
