"""Races decided by PostgreSQL: one refresh token used twice at once, one email twice at once."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from tests.accounts.helpers import register, registration


async def test_one_refresh_token_used_twice_at_once_yields_no_live_pair(
    client: httpx.AsyncClient,
) -> None:
    body = await register(client)

    responses = await asyncio.gather(
        *(
            client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})
            for _ in range(2)
        )
    )

    assert sorted(r.status_code for r in responses) == [200, 401]
    (winner,) = [r.json() for r in responses if r.status_code == 200]
    # The loser presented a retired token: the family is revoked, the winner's new token with it.
    again = await client.post("/api/auth/token/refresh/", json={"refresh": winner["refresh"]})
    assert again.status_code == 401


async def test_same_email_registered_twice_at_once_creates_one_user(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    responses = await asyncio.gather(
        client.post("/api/auth/register/", json=registration("a", email="same@example.com")),
        client.post("/api/auth/register/", json=registration("b", email="SAME@example.com")),
    )

    assert sorted(r.status_code for r in responses) == [201, 409]
    (refused,) = [r.json() for r in responses if r.status_code == 409]
    assert [error["field"] for error in refused["errors"]] == ["email"]
    assert await db.scalar(select(func.count()).select_from(User)) == 1
