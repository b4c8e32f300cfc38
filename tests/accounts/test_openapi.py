from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("path", "method", "public"),
    [
        ("/api/auth/register", "post", True),
        ("/api/auth/login", "post", True),
        ("/api/auth/token/refresh", "post", True),
        ("/api/auth/logout", "post", False),
        ("/api/auth/profile", "get", False),
        ("/api/auth/profile", "patch", False),
    ],
)
async def test_schema_documents_who_needs_a_bearer_token(
    client: httpx.AsyncClient, path: str, method: str, public: bool
) -> None:
    schema = (await client.get("/api/schema/")).json()

    operation = schema["paths"][path][method]
    effective = operation.get("security", schema["security"])
    assert (effective == [{}]) is public
    assert schema["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"


async def test_schema_shows_request_examples(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/schema/")).json()

    register = schema["components"]["schemas"]["RegisterIn"]["properties"]
    assert register["email"]["examples"] == ["u1@example.com"]
    assert register["password"]["examples"] == ["StrongPass123!"]
