from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import RefreshFamily, User
from shop.app import create_app
from shop.settings import Settings
from tests.accounts.helpers import STRONG, bearer, fields, register, registration
from tests.conftest import make_settings, memcached_url
from tests.support.asgi import serve_in_process
from tests.support.factories import make_user


@pytest.mark.parametrize("path", ["/api/auth/register/", "/api/auth/register"])
async def test_register_returns_profile_and_working_tokens(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, json=registration(phone="+70000000000", address="1 Main St"))

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user", "access", "refresh"}
    user = body["user"]
    assert set(user) == {"id", "username", "email", "phone", "address", "is_staff", "date_joined"}
    assert (user["username"], user["email"], user["phone"], user["address"], user["is_staff"]) == (
        "u1",
        "u1@example.com",
        "+70000000000",
        "1 Main St",
        False,
    )
    profile = await client.get("/api/auth/profile/", headers=bearer(body["access"]))
    assert profile.json() == user


async def test_register_stores_argon2id_hash_not_password(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await register(client)

    stored = await db.scalar(select(User.password_hash))
    assert stored is not None and STRONG not in stored
    # OWASP's recommended Argon2id configuration unless PASSWORD_HASH_* say otherwise.
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_password_hash_cost_follows_the_settings(
    postgres_url: str, memcached: Any, db: AsyncSession
) -> None:
    settings = make_settings(
        postgres_url,
        memcached_url(memcached),
        PASSWORD_HASH_TIME_COST="3",
        PASSWORD_HASH_MEMORY_KIB="12288",
    )
    async with serve_in_process(create_app(settings)) as client:
        await register(client)

    stored = await db.scalar(select(User.password_hash))
    assert stored is not None and stored.startswith("$argon2id$v=19$m=12288,t=3,p=1$")


async def test_register_starts_a_refresh_family(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await register(client)

    assert await db.scalar(select(func.count()).select_from(RefreshFamily)) == 1


async def test_register_normalises_email_to_lower_case(client: httpx.AsyncClient) -> None:
    body = await register(client, email="  Mixed.Case@Example.COM ")

    assert body["user"]["email"] == "mixed.case@example.com"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "not-an-email"}, "email"),  # no @
        ({"email": "a@b"}, "email"),  # no top-level domain
        ({"email": "a b@example.com"}, "email"),  # space in the local part
        ({"email": "@example.com"}, "email"),  # empty local part
        ({"email": "a@-example.com"}, "email"),  # label starts with a hyphen
        ({"username": ""}, "username"),  # blank
        ({"username": "   "}, "username"),  # blank after trimming
        ({"username": "has space"}, "username"),  # not allowed character
        ({"username": "semi;colon"}, "username"),  # not allowed character
        ({"password_confirm": "StrongPass123?"}, "password_confirm"),  # mismatch
        ({"password": "Sh0rt!", "password_confirm": "Sh0rt!"}, "password"),  # too short
        ({"password": "8412957301", "password_confirm": "8412957301"}, "password"),  # all digits
        ({"password": "password1", "password_confirm": "password1"}, "password"),  # common
        (
            {"password": "u1@example.com", "password_confirm": "u1@example.com"},
            "password",
        ),  # = email
    ],
)
async def test_register_rejects_invalid_details_naming_the_field(
    client: httpx.AsyncClient, db: AsyncSession, overrides: dict[str, str], field: str
) -> None:
    response = await client.post("/api/auth/register/", json=registration(**overrides))

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in fields(response)
    assert await db.scalar(select(func.count()).select_from(User)) == 0


async def test_weak_password_lists_every_failing_rule(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/register/", json=registration(password="123456", password_confirm="123456")
    )

    messages = [e["message"] for e in response.json()["errors"] if e["field"] == "password"]
    assert response.status_code == 400
    assert messages == [
        "This password is too short. It must contain at least 8 characters.",
        "This password is entirely numeric.",
        "This password is too common.",
    ]


async def test_password_too_similar_to_username_is_rejected(client: httpx.AsyncClient) -> None:
    body = registration(
        username="marguerite", password="Marguerite1", password_confirm="Marguerite1"
    )

    response = await client.post("/api/auth/register/", json=body)

    assert response.status_code == 400
    assert {
        "field": "password",
        "message": "The password is too similar to the username.",
    } in response.json()["errors"]


@pytest.mark.parametrize(
    ("existing", "overrides", "field"),
    [
        ({"email": "u1@example.com"}, {}, "email"),  # same email
        ({"email": "u1@example.com"}, {"email": "U1@Example.COM"}, "email"),  # differs only in case
        ({"username": "u1"}, {}, "username"),  # same username
        ({"username": "u1"}, {"username": "U1"}, "username"),  # username differs only in case
    ],
)
async def test_taken_email_or_username_is_409(
    client: httpx.AsyncClient,
    db: AsyncSession,
    existing: dict[str, str],
    overrides: dict[str, str],
    field: str,
) -> None:
    await make_user(db, **existing)

    response = await client.post("/api/auth/register/", json=registration(**overrides))

    assert response.status_code == 409
    assert fields(response) == [field]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{", "malformed JSON"),
        (b"[]", "not an object"),
        (
            b'{"username":"u1","email":"u1@example.com","password":"StrongPass123!"}',
            "missing confirmation",
        ),
        (
            b'{"username":1,"email":"u1@example.com","password":"x","password_confirm":"x"}',
            "wrong type",
        ),
        (
            b'{"username":"u1","email":"u1@example.com","password":"%s","password_confirm":"x"}'
            % (b"A" * 5000),
            "password longer than 256 characters",
        ),
        (
            b'{"username":"%s","email":"u1@example.com","password":"x","password_confirm":"x"}'
            % (b"u" * 151),
            "username longer than 150 characters",
        ),
        (
            b'{"username":"u1","email":"u1@example.com","password":null,"password_confirm":null}',
            "null password",
        ),
    ],
)
async def test_malformed_registration_is_400_problem(
    client: httpx.AsyncClient, content: bytes, why: str
) -> None:
    response = await client.post(
        "/api/auth/register/", content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400, why
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_registration_is_throttled_per_address(
    postgres_url: str, memcached: object, client: httpx.AsyncClient
) -> None:
    from shop.app import create_app
    from tests.conftest import make_settings, memcached_url
    from tests.support.asgi import serve_in_process

    settings: Settings = make_settings(
        postgres_url,
        memcached_url(memcached),
        REGISTER_PER_MINUTE="2",  # type: ignore[arg-type]
    )
    async with serve_in_process(create_app(settings)) as limited:
        first = await limited.post("/api/auth/register/", json=registration(1))
        second = await limited.post("/api/auth/register/", json=registration(1))  # a 409 counts too
        third = await limited.post("/api/auth/register/", json=registration(3))

    assert (first.status_code, second.status_code, third.status_code) == (201, 409, 429)
    assert int(third.headers["Retry-After"]) > 0
