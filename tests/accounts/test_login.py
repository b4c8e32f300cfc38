from __future__ import annotations

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.accounts.security import Passwords
from shop.settings import PasswordSettings
from tests.accounts.helpers import bearer
from tests.support.factories import PASSWORD, make_user


@pytest.mark.parametrize("path", ["/api/auth/login/", "/api/auth/login"])
async def test_login_returns_profile_and_tokens(
    client: httpx.AsyncClient, db: AsyncSession, path: str
) -> None:
    user = await make_user(db, email="ann@example.com", username="ann")

    response = await client.post(path, json={"email": "ann@example.com", "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert body["user"]["id"] == user.id and body["user"]["username"] == "ann"
    assert (
        await client.get("/api/auth/profile/", headers=bearer(body["access"]))
    ).status_code == 200


async def test_login_email_is_case_insensitive(client: httpx.AsyncClient, db: AsyncSession) -> None:
    await make_user(db, email="ann@example.com")

    response = await client.post(
        "/api/auth/login/", json={"email": " ANN@Example.com", "password": PASSWORD}
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("email", "password", "active"),
    [
        ("ann@example.com", "Wrong-Password-1", True),  # wrong password
        ("nobody@example.com", PASSWORD, True),  # unknown email
        ("ann@example.com", PASSWORD, False),  # right password, deactivated account
        ("ann@example.com", "", True),  # empty password
    ],
)
async def test_failed_login_gives_one_401_body(
    client: httpx.AsyncClient, db: AsyncSession, email: str, password: str, active: bool
) -> None:
    await make_user(db, email="ann@example.com", is_active=active)

    response = await client.post("/api/auth/login/", json={"email": email, "password": password})

    assert response.status_code == 401
    body = response.json()
    assert (body["title"], body["detail"]) == (
        "Unauthorized",
        "No active account found with the given credentials.",
    )


@pytest.mark.parametrize(
    "old",
    [
        Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1),  # weaker
        Argon2Hasher(),  # argon2-cffi's default (RFC 9106 low memory), what the shop used first
    ],
    ids=["weaker", "rfc9106-low-memory"],
)
async def test_login_upgrades_hash_made_with_old_parameters(
    client: httpx.AsyncClient, db: AsyncSession, old: Argon2Hasher
) -> None:
    old_hash = PasswordHash((old,)).hash(PASSWORD)
    await make_user(db, email="ann@example.com", password_hash=old_hash)

    response = await client.post(
        "/api/auth/login/", json={"email": "ann@example.com", "password": PASSWORD}
    )

    new_hash = await db.scalar(select(User.password_hash))
    assert response.status_code == 200
    assert new_hash is not None and new_hash != old_hash
    assert new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    again = await client.post(
        "/api/auth/login/", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert again.status_code == 200


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"email": "ann@example.com"}, "missing password"),
        ({"password": PASSWORD}, "missing email"),
        ({"email": ["ann@example.com"], "password": PASSWORD}, "email is a list"),
        ({"email": "a" * 300, "password": PASSWORD}, "email longer than 254 characters"),
    ],
)
async def test_malformed_login_is_400_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, object], why: str
) -> None:
    response = await client.post("/api/auth/login/", json=body)

    assert response.status_code == 400, why
    field = "password" if why == "missing password" else "email"
    assert [error["field"] for error in response.json()["errors"]] == [field], why


def test_verification_without_a_stored_hash_or_with_a_malformed_one_fails() -> None:
    passwords = Passwords(PasswordSettings())

    assert passwords.verify(PASSWORD, None) == (False, None)  # unknown user: dummy work, no
    assert passwords.verify(PASSWORD, "not-an-argon2-hash") == (False, None)  # nor a 500


async def test_a_user_whose_stored_hash_is_malformed_cannot_log_in(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_user(db, email="odd@example.com", password_hash="$argon2id$garbage")

    response = await client.post(
        "/api/auth/login/", json={"email": "odd@example.com", "password": PASSWORD}
    )

    assert response.status_code == 401
