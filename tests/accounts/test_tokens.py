"""Tokens: what the middleware and the refresh endpoint accept; rotation, reuse, logout."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import RefreshFamily
from shop.settings import Settings
from tests.accounts.helpers import bearer, register
from tests.support.factories import make_user

KEY = "test-secret-key-that-is-long-enough"


def claims(user_id: int | str, token_type: str = "access", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "type": token_type,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def unsigned(payload: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def bad_access_tokens(user_id: int, refresh: str) -> list[tuple[str, str]]:
    """(token, why) pairs the middleware must refuse with 401."""
    long_ago = int(time.time()) - 3600
    return [
        (refresh, "a refresh token is not an access token"),
        (
            jwt.encode(claims(user_id), "another-key-of-sufficient-length!", algorithm="HS256"),
            "signed with another key",
        ),
        (unsigned(claims(user_id)), "alg none"),
        (
            jwt.encode(claims(user_id), KEY, algorithm="HS512"),
            "algorithm other than the pinned HS256",
        ),
        (
            jwt.encode(claims(user_id, iat=long_ago - 60, exp=long_ago), KEY, algorithm="HS256"),
            "expired",
        ),
        (jwt.encode(claims(user_id, sub=None), KEY, algorithm="HS256"), "missing sub"),
        (jwt.encode(claims(user_id, exp=None), KEY, algorithm="HS256"), "missing exp"),
        (jwt.encode(claims(user_id, jti=None), KEY, algorithm="HS256"), "missing jti"),
        (jwt.encode(claims(user_id, type=None), KEY, algorithm="HS256"), "missing type"),
        (jwt.encode(claims(user_id, type=1), KEY, algorithm="HS256"), "type not a string"),
        (jwt.encode(claims(user_id, fam=["x"]), KEY, algorithm="HS256"), "family not a string"),
        (jwt.encode(claims("abc"), KEY, algorithm="HS256"), "sub not a user id"),
        (
            jwt.encode(claims("99999999999999999999999"), KEY, algorithm="HS256"),
            "sub beyond any id",
        ),
        (jwt.encode(claims("-1"), KEY, algorithm="HS256"), "negative sub"),
        (jwt.encode(claims(user_id + 1000), KEY, algorithm="HS256"), "user does not exist"),
        ("not.a.jwt", "malformed"),
        ("", "empty"),
        ("é" * 50, "not ASCII"),
    ]


async def test_tokens_are_hs256_with_the_required_claims(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    body = await register(client)

    for token, kind in ((body["access"], "access"), (body["refresh"], "refresh")):
        assert jwt.get_unverified_header(token)["alg"] == "HS256"
        decoded = jwt.decode(token, settings.tokens.secret_key, algorithms=["HS256"])
        assert {"sub", "exp", "iat", "jti", "type"} <= set(decoded)
        assert decoded["type"] == kind and decoded["sub"] == str(body["user"]["id"])
    access = jwt.decode(body["access"], settings.tokens.secret_key, algorithms=["HS256"])
    refresh = jwt.decode(body["refresh"], settings.tokens.secret_key, algorithms=["HS256"])
    assert access["exp"] - access["iat"] == 60 * 60
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 60 * 60


# An attacker's HS512 token signed with the server's (HS256-sized) key: PyJWT warns that
# the key is short for HS512, which is the point of this forgery.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_access_token_is_refused_in_every_bad_shape(client: httpx.AsyncClient) -> None:
    body = await register(client)
    user_id = body["user"]["id"]

    for token, why in bad_access_tokens(user_id, body["refresh"]):
        headers = {"Authorization": f"Bearer {token}".encode()}  # bytes: lets non-ASCII through
        response = await client.get("/api/auth/profile/", headers=headers)
        assert response.status_code == 401, why
        assert response.headers["content-type"].startswith("application/problem+json"), why
        assert response.headers["WWW-Authenticate"] == "Bearer", why


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no Authorization header
        {"Authorization": "Basic dTE6cGFzcw=="},  # another scheme
        {"Authorization": "Bearer"},  # scheme without token
        {"Authorization": "Bearer    "},  # blank token
    ],
)
async def test_protected_route_without_bearer_token_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/api/auth/profile", headers=headers)

    assert response.status_code == 401


async def test_token_within_leeway_of_expiry_is_accepted(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    user = await make_user(db)
    now = int(time.time())
    token = jwt.encode(claims(user.id, iat=now - 600, exp=now - 2), KEY, algorithm="HS256")

    response = await client.get("/api/auth/profile/", headers=bearer(token))

    assert response.status_code == 200


async def test_a_token_accepted_before_is_refused_once_it_expires(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    user = await make_user(db)
    exp = int(time.time()) - settings.tokens.leeway_seconds + 2  # 1-2 s of leeway left
    token = jwt.encode(claims(user.id, iat=exp - 600, exp=exp), KEY, algorithm="HS256")
    assert (await client.get("/api/auth/profile/", headers=bearer(token))).status_code == 200

    await asyncio.sleep(exp + settings.tokens.leeway_seconds + 0.1 - time.time())
    response = await client.get("/api/auth/profile/", headers=bearer(token))

    assert response.status_code == 401  # verified once, remembered, still expired


async def test_refresh_issues_a_new_working_pair(client: httpx.AsyncClient) -> None:
    body = await register(client)

    response = await client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})

    assert response.status_code == 200
    pair = response.json()
    assert set(pair) == {"access", "refresh"} and pair["refresh"] != body["refresh"]
    assert (
        await client.get("/api/auth/profile/", headers=bearer(pair["access"]))
    ).status_code == 200
    assert (
        await client.post("/api/auth/token/refresh", json={"refresh": pair["refresh"]})
    ).status_code == 200


async def test_access_token_is_refused_as_refresh_token(client: httpx.AsyncClient) -> None:
    body = await register(client)

    response = await client.post("/api/auth/token/refresh/", json={"refresh": body["access"]})

    assert response.status_code == 401


async def test_refresh_token_is_refused_in_every_bad_shape(client: httpx.AsyncClient) -> None:
    body = await register(client)
    user_id = body["user"]["id"]
    fam = str(uuid.uuid4())
    bad = [
        (
            jwt.encode(claims(user_id, "refresh", fam=fam), "another-key-of-sufficient-length!"),
            "another key",
        ),
        (unsigned(claims(user_id, "refresh", fam=fam)), "alg none"),
        (jwt.encode(claims(user_id, "refresh"), KEY), "no family"),
        (jwt.encode(claims(user_id, "refresh", fam="not-a-uuid"), KEY), "family not a uuid"),
        (jwt.encode(claims(user_id, "refresh", fam=fam), KEY), "unknown family"),
        (jwt.encode(claims(user_id, "refresh", fam=fam, sub=None), KEY), "missing sub"),
        ("garbage", "malformed"),
    ]

    for token, why in bad:
        response = await client.post("/api/auth/token/refresh/", json={"refresh": token})
        assert response.status_code == 401, why
    assert (
        await client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})
    ).status_code == 200


async def test_rotated_refresh_token_stops_working(client: httpx.AsyncClient) -> None:
    body = await register(client)
    await client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})

    response = await client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})

    assert response.status_code == 401


async def test_reusing_a_rotated_refresh_token_revokes_the_newest_too(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    body = await register(client)
    newest = (
        await client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})
    ).json()

    stolen = await client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})
    legit = await client.post("/api/auth/token/refresh/", json={"refresh": newest["refresh"]})

    assert (stolen.status_code, legit.status_code) == (401, 401)
    assert (
        await db.scalar(
            select(func.count())
            .select_from(RefreshFamily)
            .where(RefreshFamily.revoked_at.is_not(None))
        )
        == 1
    )


async def test_reuse_revokes_only_that_login_session(client: httpx.AsyncClient) -> None:
    first = await register(client)
    second = (
        await client.post(
            "/api/auth/login/", json={"email": "u1@example.com", "password": "StrongPass123!"}
        )
    ).json()
    await client.post("/api/auth/token/refresh/", json={"refresh": first["refresh"]})
    await client.post("/api/auth/token/refresh/", json={"refresh": first["refresh"]})  # reuse

    response = await client.post("/api/auth/token/refresh/", json={"refresh": second["refresh"]})

    assert response.status_code == 200


async def test_expired_refresh_token_is_refused(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    user = await make_user(db)
    long_ago = int(time.time()) - 3600
    token = jwt.encode(
        claims(user.id, "refresh", fam=str(uuid.uuid4()), iat=long_ago - 60, exp=long_ago), KEY
    )

    response = await client.post("/api/auth/token/refresh/", json={"refresh": token})

    assert response.status_code == 401


async def test_expired_family_is_deleted_when_used(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    body = await register(client)
    # The token itself is still valid; its family's lifetime in the database has ended.
    await db.execute(text("UPDATE refresh_families SET expires_at = now() - interval '1 second'"))
    await db.commit()

    response = await client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})

    assert response.status_code == 401
    assert await db.scalar(select(func.count()).select_from(RefreshFamily)) == 0


async def test_login_cleans_up_the_users_expired_families(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await register(client)
    await db.execute(text("UPDATE refresh_families SET expires_at = now() - interval '1 second'"))
    await db.commit()

    await client.post(
        "/api/auth/login/", json={"email": "u1@example.com", "password": "StrongPass123!"}
    )

    assert await db.scalar(select(func.count()).select_from(RefreshFamily)) == 1


async def test_refresh_is_refused_for_a_deactivated_user(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    body = await register(client)
    await db.execute(text("UPDATE users SET is_active = false"))
    await db.commit()

    response = await client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})

    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/api/auth/logout/", "/api/auth/logout"])
async def test_logout_revokes_the_family(client: httpx.AsyncClient, path: str) -> None:
    body = await register(client)
    rotated = (
        await client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})
    ).json()

    response = await client.post(
        path, json={"refresh": rotated["refresh"]}, headers=bearer(rotated["access"])
    )

    assert response.status_code == 204 and response.content == b""
    after = await client.post("/api/auth/token/refresh/", json={"refresh": rotated["refresh"]})
    assert after.status_code == 401


async def test_logout_twice_is_still_204(client: httpx.AsyncClient) -> None:
    body = await register(client)
    await client.post(
        "/api/auth/logout/", json={"refresh": body["refresh"]}, headers=bearer(body["access"])
    )

    response = await client.post(
        "/api/auth/logout/", json={"refresh": body["refresh"]}, headers=bearer(body["access"])
    )

    assert response.status_code == 204


async def test_logout_with_an_expired_refresh_token_still_ends_the_session(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    body = await register(client)
    issued = jwt.decode(body["refresh"], options={"verify_signature": False})
    long_ago = int(time.time()) - 3600
    expired = jwt.encode({**issued, "iat": long_ago - 60, "exp": long_ago}, KEY)

    response = await client.post(
        "/api/auth/logout/", json={"refresh": expired}, headers=bearer(body["access"])
    )

    assert response.status_code == 204
    revoked = await db.scalar(
        select(RefreshFamily.revoked_at).where(RefreshFamily.id == uuid.UUID(issued["fam"]))
    )
    assert revoked is not None


async def test_logout_needs_an_access_token(client: httpx.AsyncClient) -> None:
    body = await register(client)

    response = await client.post("/api/auth/logout/", json={"refresh": body["refresh"]})

    assert response.status_code == 401
    assert (
        await client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})
    ).status_code == 200


async def test_logout_with_another_users_refresh_token_is_403(client: httpx.AsyncClient) -> None:
    ann = await register(client, "ann")
    bob = await register(client, "bob")

    response = await client.post(
        "/api/auth/logout/", json={"refresh": ann["refresh"]}, headers=bearer(bob["access"])
    )

    assert response.status_code == 403
    assert (
        await client.post("/api/auth/token/refresh/", json={"refresh": ann["refresh"]})
    ).status_code == 200


async def test_logout_with_an_access_token_as_refresh_is_401(client: httpx.AsyncClient) -> None:
    body = await register(client)

    response = await client.post(
        "/api/auth/logout/", json={"refresh": body["access"]}, headers=bearer(body["access"])
    )

    assert response.status_code == 401
