"""PostgreSQL goes away mid-test: requests fail fast with 503 problem details; the API recovers."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text

from shop.app import create_app
from shop.migrations import upgrade_async
from tests.conftest import make_settings
from tests.hardening.pg import ThrowawayPostgres
from tests.support.asgi import serve_in_process

REGISTRATION = {
    "username": "faulty",
    "email": "faulty@example.com",
    "password": "Sturdy-Lantern-93",
    "password_confirm": "Sturdy-Lantern-93",
}


@pytest.fixture
async def pg():
    server = ThrowawayPostgres().init()
    await asyncio.to_thread(server.start)
    await upgrade_async("postgresql+asyncpg://" + server.url.split("://", 1)[1])
    yield server
    await asyncio.to_thread(server.destroy)


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 503
    assert int(response.headers["retry-after"]) > 0


async def test_database_outage_is_503_fast_and_recovers_without_restart(pg):
    # No memcached: nothing can be answered from a cache, every request needs PostgreSQL.
    settings = make_settings(pg.url, None, DB_CONNECT_TIMEOUT="2", DB_POOL_TIMEOUT="2")
    async with serve_in_process(create_app(settings)) as client:
        registered = await client.post("/api/auth/register/", json=REGISTRATION)
        assert registered.status_code == 201
        headers = {"Authorization": f"Bearer {registered.json()['access']}"}
        login = {"email": REGISTRATION["email"], "password": REGISTRATION["password"]}
        assert (await client.get("/api/orders/", headers=headers)).status_code == 200

        await asyncio.to_thread(pg.stop)
        started = time.monotonic()
        during = [
            await client.get("/api/orders/", headers=headers),
            await client.post("/api/auth/login/", json=login),
            await client.post(
                "/api/orders/", json={"items": [{"product_id": 1, "quantity": 1}]}, headers=headers
            ),
        ]
        elapsed = time.monotonic() - started
        ready = await client.get("/health/ready")

        await asyncio.to_thread(pg.start)
        recovered = None
        for _ in range(40):  # the pool drops its dead connections on first contact
            response = await client.get("/api/orders/", headers=headers)
            if response.status_code == 200:
                recovered = response
                break
            assert_unavailable(response)
            await asyncio.sleep(0.25)
        logged_in = await client.post("/api/auth/login/", json=login)

    for response in during:
        assert_unavailable(response)
    # Generous bound, not a timing assertion: "fast" means no hang until some 30-60 s timeout.
    assert elapsed < 10 * len(during)
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"]["status"] == "down"
    assert recovered is not None, "the API did not recover after PostgreSQL came back"
    assert logged_in.status_code == 200


async def test_pool_exhaustion_is_503_not_a_hang(pg):
    """Every pooled connection checked out: the next request waits DB_POOL_TIMEOUT, then 503."""
    # Two, not one: a failed login records the failure on a second connection
    # (so the record survives the request's rollback).
    settings = make_settings(
        pg.url, None, DB_POOL_SIZE="2", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT="1"
    )
    app = create_app(settings)
    async with serve_in_process(app) as client:
        engine = app.state.engine

        async with engine.connect() as held, engine.connect() as held_too:
            await held.execute(text("SELECT 1"))
            await held_too.execute(text("SELECT 1"))
            started = time.monotonic()
            response = await client.post(
                "/api/auth/login/", json={"email": "a@example.com", "password": "whatever-1"}
            )
            elapsed = time.monotonic() - started
        after = await client.post(
            "/api/auth/login/", json={"email": "a@example.com", "password": "whatever-1"}
        )

    assert_unavailable(response)
    assert elapsed < 10  # generous: the pool timeout is 1 s
    assert after.status_code == 401  # connection back in the pool: normal service


async def test_first_request_after_a_quiet_postgresql_restart_succeeds(pg):
    """No traffic during the outage: the pool still holds connections to the old server.

    They are pinged on checkout after being idle, so the first request gets a live one
    (it used to be a 503).
    """
    settings = make_settings(pg.url, None, DB_CONNECT_TIMEOUT="2", DB_POOL_TIMEOUT="2")
    async with serve_in_process(create_app(settings)) as client:
        registered = await client.post("/api/auth/register/", json=REGISTRATION)
        headers = {"Authorization": f"Bearer {registered.json()['access']}"}
        before = await client.get("/api/auth/profile/", headers=headers)

        await asyncio.to_thread(pg.stop)
        await asyncio.to_thread(pg.start)
        after = await client.get("/api/auth/profile/", headers=headers)
        logged_in = await client.post(
            "/api/auth/login/",
            json={"email": REGISTRATION["email"], "password": REGISTRATION["password"]},
        )

    assert before.status_code == 200
    assert after.status_code == 200, after.text
    assert after.json()["email"] == REGISTRATION["email"]
    assert logged_in.status_code == 200
