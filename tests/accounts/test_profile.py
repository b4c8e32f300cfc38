from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.settings import Settings
from tests.accounts.helpers import bearer, fields, register
from tests.support.factories import auth_headers, make_user


@pytest.mark.parametrize("path", ["/api/auth/profile/", "/api/auth/profile"])
async def test_profile_shows_the_callers_account(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, path: str
) -> None:
    user = await make_user(
        db, username="ann", email="ann@example.com", phone="+1 555", address="Elm St"
    )

    response = await client.get(path, headers=auth_headers(settings, user))

    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in body.items() if k != "date_joined"} == {
        "id": user.id,
        "username": "ann",
        "email": "ann@example.com",
        "phone": "+1 555",
        "address": "Elm St",
        "is_staff": False,
    }
    assert body["date_joined"].startswith(str(user.date_joined.year))


async def test_patch_changes_only_the_fields_sent(client: httpx.AsyncClient) -> None:
    body = await register(client, phone="+1", address="Old address")

    # The README's example: only the phone changes.
    response = await client.patch(
        "/api/auth/profile/", json={"phone": "+70000000000"}, headers=bearer(body["access"])
    )

    assert response.status_code == 200
    assert response.json() == {**body["user"], "phone": "+70000000000"}
    assert (
        await client.get("/api/auth/profile/", headers=bearer(body["access"]))
    ).json() == response.json()


async def test_patch_null_clears_phone_and_address(client: httpx.AsyncClient) -> None:
    body = await register(client, phone="+1", address="Old address")

    response = await client.patch(
        "/api/auth/profile", json={"phone": None, "address": None}, headers=bearer(body["access"])
    )

    assert (response.json()["phone"], response.json()["address"]) == ("", "")


async def test_patch_renames_the_user(client: httpx.AsyncClient) -> None:
    body = await register(client)
    await client.get("/api/auth/profile/", headers=bearer(body["access"]))  # caches the caller

    response = await client.patch(
        "/api/auth/profile/", json={"username": "renamed"}, headers=bearer(body["access"])
    )

    assert response.json()["username"] == "renamed"
    assert (await client.get("/api/auth/profile/", headers=bearer(body["access"]))).json()[
        "username"
    ] == "renamed"


async def test_patch_ignores_read_only_fields(client: httpx.AsyncClient, db: AsyncSession) -> None:
    body = await register(client)

    response = await client.patch(
        "/api/auth/profile/",
        json={"is_staff": True, "email": "other@example.com", "id": 999},
        headers=bearer(body["access"]),
    )

    assert response.status_code == 200
    row = (await db.execute(select(User.is_staff, User.email, User.id))).one()
    assert tuple(row) == (False, "u1@example.com", body["user"]["id"])


@pytest.mark.parametrize(
    ("patch", "status", "field"),
    [
        ({"username": "taken"}, 409, "username"),  # another user's username
        ({"username": "TAKEN"}, 409, "username"),  # same, other case
        ({"username": ""}, 400, "username"),  # blank
        ({"username": "bad name"}, 400, "username"),  # space not allowed
        ({"username": None}, 400, "username"),  # username cannot be null
        ({"phone": "1" * 33}, 400, "phone"),  # longer than 32 characters
        ({"phone": 5}, 400, "phone"),  # wrong type
    ],
)
async def test_invalid_profile_patch_is_refused(
    client: httpx.AsyncClient, db: AsyncSession, patch: dict[str, object], status: int, field: str
) -> None:
    await make_user(db, username="taken")
    body = await register(client)

    response = await client.patch("/api/auth/profile/", json=patch, headers=bearer(body["access"]))

    assert response.status_code == status
    assert field in fields(response)
    assert (await client.get("/api/auth/profile/", headers=bearer(body["access"]))).json() == body[
        "user"
    ]


async def test_patch_keeping_ones_own_username_in_another_case_is_allowed(
    client: httpx.AsyncClient,
) -> None:
    body = await register(client, "ann")

    response = await client.patch(
        "/api/auth/profile/", json={"username": "Uann"}, headers=bearer(body["access"])
    )

    assert response.status_code == 200 and response.json()["username"] == "Uann"
