"""Imported users log in over HTTP with the passwords they had in the Django app."""

from __future__ import annotations

import asyncpg
import pytest

from tests.accounts.helpers import bearer
from tests.importer.conftest import HASHERS, PASSWORDS, run_import, source_execute


async def _stored_hash(url: str, user_id: int) -> str:
    conn = await asyncpg.connect(url)
    try:
        value: str = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
        return value
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("user_id", "email"),
    [
        (1, "admin@example.com"),  # pbkdf2_sha256, Django 5.2's default and cost
        (2, "alice@example.com"),  # pbkdf2_sha1; the e-mail was Alice@Example.com in Django
        (3, "bruno@example.com"),  # argon2 (argon2id through argon2-cffi)
        (4, "chloe@example.com"),  # scrypt
        (10, "gus@example.com"),  # pbkdf2_sha256 with an older, lower iteration count
    ],
)
async def test_old_password_logs_in_and_is_rehashed_to_argon2id(
    client, settings, postgres_url, django_source, user_id, email
):
    await run_import(settings, django_source)
    assert (await _stored_hash(postgres_url, user_id)).startswith(HASHERS.get(user_id, "pbkdf2"))

    first = await client.post(
        "/api/auth/login/", json={"email": email, "password": PASSWORDS[user_id]}
    )
    second = await client.post(
        "/api/auth/login/", json={"email": email, "password": PASSWORDS[user_id]}
    )

    assert first.status_code == 200, first.text
    assert first.json()["user"]["id"] == user_id
    assert (await _stored_hash(postgres_url, user_id)).startswith("$argon2id$")
    assert second.status_code == 200, second.text
    profile = await client.get("/api/auth/profile/", headers=bearer(first.json()["access"]))
    assert profile.json()["email"] == email


async def test_wrong_password_of_an_imported_user_is_the_usual_401(
    client, settings, postgres_url, django_source
):
    await run_import(settings, django_source)

    response = await client.post(
        "/api/auth/login/", json={"email": "admin@example.com", "password": PASSWORDS[2]}
    )

    assert response.status_code == 401
    assert (await _stored_hash(postgres_url, 1)).startswith("pbkdf2_sha256$")


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("dora@example.com", "!"),  # an unusable Django password matches nothing, not even "!"
        ("dora@example.com", ""),
        ("hana@example.com", "anything-at-all"),  # bcrypt_sha256: the shop cannot verify it
        ("frank@example.com", PASSWORDS[8]),  # right password, but inactive in Django
    ],
)
async def test_users_who_could_not_log_in_to_django_cannot_log_in_here(
    client, settings, django_source, email, password
):
    await run_import(settings, django_source)

    response = await client.post("/api/auth/login/", json={"email": email, "password": password})

    assert response.status_code in (400, 401)  # an empty password is refused by the schema


async def test_deactivation_in_a_later_pass_ends_the_users_session_at_once(
    client, settings, django_source
):
    await run_import(settings, django_source)
    login = await client.post(
        "/api/auth/login/", json={"email": "bruno@example.com", "password": PASSWORDS[3]}
    )
    headers = bearer(login.json()["access"])
    assert (await client.get("/api/auth/profile/", headers=headers)).status_code == 200  # cached

    await source_execute(django_source, "UPDATE users_user SET is_active = false WHERE id = 3")
    await run_import(settings, django_source)

    assert (await client.get("/api/auth/profile/", headers=headers)).status_code == 401


async def test_promotion_in_a_later_pass_gives_staff_rights_on_the_next_request(
    client, settings, django_source
):
    await run_import(settings, django_source)
    login = await client.post(
        "/api/auth/login/", json={"email": "bruno@example.com", "password": PASSWORDS[3]}
    )
    headers = bearer(login.json()["access"])
    assert (await client.get("/api/admin/orders/", headers=headers)).status_code == 403

    await source_execute(django_source, "UPDATE users_user SET is_superuser = true WHERE id = 3")
    await run_import(settings, django_source)

    assert (await client.get("/api/admin/orders/", headers=headers)).status_code == 200
