"""Arrange helpers shared by the accounts tests."""

from __future__ import annotations

from typing import Any

import httpx

STRONG = "StrongPass123!"


def registration(n: int | str = 1, **overrides: Any) -> dict[str, Any]:
    body = {
        "username": f"u{n}",
        "email": f"u{n}@example.com",
        "password": STRONG,
        "password_confirm": STRONG,
    }
    body.update(overrides)
    return body


async def register(client: httpx.AsyncClient, n: int | str = 1, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/api/auth/register/", json=registration(n, **overrides))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fields(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json().get("errors", [])]
