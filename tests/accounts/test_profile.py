from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.settings import Settings
from tests.accounts.helpers import STRONG, bearer, fields, register
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
        json={"is_staff": True, "id": 999, "date_joined": "2000-01-01T00:00:00Z", "phone": "+1"},
        headers=bearer(body["access"]),
    )

    assert response.status_code == 200
    row = (await db.execute(select(User.is_staff, User.id, User.phone))).one()
    assert tuple(row) == (False, body["user"]["id"], "+1")
    assert response.json()["date_joined"] == body["user"]["date_joined"]


async def test_read_only_profile_fields_are_marked_in_the_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/schema/")).json()

    properties = schema["components"]["schemas"]["Profile"]["properties"]

    assert {name for name, spec in properties.items() if spec.get("readOnly")} == {
        "id",
        "is_staff",
        "date_joined",
    }


async def test_email_changes_with_the_current_password(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    body = await register(client)

    response = await client.patch(
        "/api/auth/profile/",
        json={"email": "New.Address@Example.com", "current_password": STRONG},
        headers=bearer(body["access"]),
    )
    old_login = await client.post(
        "/api/auth/login/", json={"email": "u1@example.com", "password": STRONG}
    )
    new_login = await client.post(
        "/api/auth/login/", json={"email": "new.address@example.com", "password": STRONG}
    )

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "new.address@example.com"
    assert old_login.status_code == 401
    assert new_login.status_code == 200


async def test_email_change_ends_the_users_other_sessions_but_not_this_one(
    client: httpx.AsyncClient,
) -> None:
    this = await register(client)
    other = (
        await client.post("/api/auth/login/", json={"email": "u1@example.com", "password": STRONG})
    ).json()

    changed = await client.patch(
        "/api/auth/profile/",
        json={"email": "moved@example.com", "current_password": STRONG},
        headers=bearer(this["access"]),
    )
    other_refresh = await client.post(
        "/api/auth/token/refresh/", json={"refresh": other["refresh"]}
    )
    this_refresh = await client.post("/api/auth/token/refresh/", json={"refresh": this["refresh"]})

    assert changed.status_code == 200
    assert other_refresh.status_code == 401
    assert this_refresh.status_code == 200


@pytest.mark.parametrize(
    ("patch", "status", "field"),
    [
        ({"email": "new@example.com"}, 400, "current_password"),  # password missing
        ({"email": "new@example.com", "current_password": ""}, 400, "current_password"),
        (
            {"email": "new@example.com", "current_password": "Wrong-guess-1"},
            403,
            "current_password",
        ),
        ({"email": "not-an-email", "current_password": STRONG}, 400, "email"),  # invalid
        ({"email": "TAKEN@example.com", "current_password": STRONG}, 409, "email"),  # other case
    ],
)
async def test_refused_email_change_changes_nothing(
    client: httpx.AsyncClient, db: AsyncSession, patch: dict[str, object], status: int, field: str
) -> None:
    await make_user(db, email="taken@example.com")
    body = await register(client)

    response = await client.patch("/api/auth/profile/", json=patch, headers=bearer(body["access"]))

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in fields(response)
    assert (await client.get("/api/auth/profile/", headers=bearer(body["access"]))).json() == body[
        "user"
    ]
    refreshed = await client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})
    assert refreshed.status_code == 200


async def test_sending_ones_own_email_needs_no_password(client: httpx.AsyncClient) -> None:
    body = await register(client)

    response = await client.patch(
        "/api/auth/profile/",
        json={"email": "U1@example.com", "phone": "+2"},
        headers=bearer(body["access"]),
    )

    assert response.status_code == 200
    assert response.json()["email"] == "u1@example.com"


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
