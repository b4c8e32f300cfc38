"""Failed logins are throttled per email and per client address, in PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shop.app import create_app
from tests.conftest import make_settings, memcached_url
from tests.support.asgi import serve_in_process
from tests.support.factories import PASSWORD, make_user

ATTEMPTS = 3  # per email; a client address gets 4x as many (set below)


@pytest.fixture(scope="module")
def throttled_app(postgres_url: str, memcached: object) -> Litestar:
    settings = make_settings(
        postgres_url,
        memcached_url(memcached),  # type: ignore[arg-type]
        LOGIN_ATTEMPTS=str(ATTEMPTS),
        LOGIN_ATTEMPTS_PER_ADDRESS=str(4 * ATTEMPTS),
        LOGIN_WINDOW_SECONDS="600",
    )
    return create_app(settings)


@pytest.fixture
async def throttled(throttled_app: Litestar) -> AsyncIterator[Litestar]:
    async with serve_in_process(throttled_app):
        yield throttled_app


def client_from(app: Litestar, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


async def fail(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post(
        "/api/auth/login/", json={"email": email, "password": "Wrong-Password-1"}
    )


async def test_email_is_blocked_after_too_many_failures_even_with_right_password(
    throttled: Litestar, db: AsyncSession
) -> None:
    await make_user(db, email="ann@example.com")
    async with client_from(throttled, "10.0.0.1") as client:
        failures = [(await fail(client, "ann@example.com")).status_code for _ in range(ATTEMPTS)]
        blocked = await client.post(
            "/api/auth/login/", json={"email": "ann@example.com", "password": PASSWORD}
        )

    assert failures == [401] * ATTEMPTS
    assert blocked.status_code == 429
    assert blocked.headers["content-type"].startswith("application/problem+json")
    assert 0 < int(blocked.headers["Retry-After"]) <= 600


async def test_email_block_applies_from_every_address(
    throttled: Litestar, db: AsyncSession
) -> None:
    await make_user(db, email="ann@example.com")
    for n in range(ATTEMPTS):
        async with client_from(throttled, f"10.0.1.{n}") as client:
            await fail(client, "ann@example.com")

    async with client_from(throttled, "10.0.2.1") as other:
        response = await other.post(
            "/api/auth/login/", json={"email": "ann@example.com", "password": PASSWORD}
        )

    assert response.status_code == 429


async def test_address_is_blocked_after_failures_across_many_emails(
    throttled: Litestar, db: AsyncSession
) -> None:
    await make_user(db, email="ann@example.com")
    async with client_from(throttled, "10.0.3.1") as client:
        failures = [
            (await fail(client, f"guess{n}@example.com")).status_code for n in range(4 * ATTEMPTS)
        ]
        blocked = await client.post(
            "/api/auth/login/", json={"email": "ann@example.com", "password": PASSWORD}
        )
    async with client_from(throttled, "10.0.3.2") as elsewhere:
        allowed = await elsewhere.post(
            "/api/auth/login/", json={"email": "ann@example.com", "password": PASSWORD}
        )

    assert failures == [401] * (4 * ATTEMPTS)
    assert blocked.status_code == 429
    assert allowed.status_code == 200


async def test_block_lifts_when_the_window_has_passed(
    throttled: Litestar, db: AsyncSession
) -> None:
    await make_user(db, email="ann@example.com")
    async with client_from(throttled, "10.0.4.1") as client:
        for _ in range(ATTEMPTS):
            await fail(client, "ann@example.com")
        assert (await fail(client, "ann@example.com")).status_code == 429
        # Let the window pass without waiting ten minutes: move the counters into the past.
        await db.execute(
            text(
                "UPDATE login_throttle SET window_start = window_start - interval '601 seconds', "
                "blocked_until = blocked_until - interval '601 seconds'"
            )
        )
        await db.commit()

        response = await client.post(
            "/api/auth/login/", json={"email": "ann@example.com", "password": PASSWORD}
        )

    assert response.status_code == 200


async def test_failures_outside_the_window_start_a_new_count(
    throttled: Litestar, db: AsyncSession
) -> None:
    await make_user(db, email="ann@example.com")
    async with client_from(throttled, "10.0.5.1") as client:
        for _ in range(ATTEMPTS - 1):
            await fail(client, "ann@example.com")
        await db.execute(
            text("UPDATE login_throttle SET window_start = window_start - interval '601 seconds'")
        )
        await db.commit()
        after_window = [
            (await fail(client, "ann@example.com")).status_code for _ in range(ATTEMPTS - 1)
        ]

        response = await client.post(
            "/api/auth/login/", json={"email": "ann@example.com", "password": PASSWORD}
        )

    assert after_window == [401] * (ATTEMPTS - 1)
    assert response.status_code == 200


async def test_successful_login_resets_the_email_count(
    throttled: Litestar, db: AsyncSession
) -> None:
    await make_user(db, email="ann@example.com")
    async with client_from(throttled, "10.0.6.1") as client:
        for _ in range(ATTEMPTS - 1):
            await fail(client, "ann@example.com")
        ok = await client.post(
            "/api/auth/login/", json={"email": "ann@example.com", "password": PASSWORD}
        )
        later = [(await fail(client, "ann@example.com")).status_code for _ in range(ATTEMPTS - 1)]

    assert ok.status_code == 200
    assert later == [401] * (ATTEMPTS - 1)


async def test_throttle_is_shared_by_api_instances(
    throttled: Litestar,
    app: Litestar,
    client: httpx.AsyncClient,
    db: AsyncSession,
    postgres_url: str,
) -> None:
    await make_user(db, email="ann@example.com")
    settings = make_settings(postgres_url, None, LOGIN_ATTEMPTS=str(ATTEMPTS))
    second_instance = create_app(settings)
    async with serve_in_process(second_instance), client_from(second_instance, "10.0.7.1") as other:
        for _ in range(ATTEMPTS):
            await fail(other, "ann@example.com")
    async with client_from(throttled, "10.0.7.2") as first:
        response = await first.post(
            "/api/auth/login/", json={"email": "ann@example.com", "password": PASSWORD}
        )

    assert response.status_code == 429
