"""Every error body is one `Problem`, documented once with the members clients read."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from shop.errors import problem_body


async def test_the_schema_documents_the_extension_members_clients_read(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/api/schema/")).json()

    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert {"errors", "allowed", "current", "shortages", "retry_after"} <= set(
        problem["properties"]
    )
    shortage = schema["components"]["schemas"]["Shortage"]
    assert set(shortage["required"]) == {"product_id", "name", "requested", "available"}


def test_a_problem_carries_only_the_members_it_was_given() -> None:
    body = msgspec.json.decode(problem_body(409, "Not enough stock.", shortages=[]))

    assert body == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "Not enough stock.",
        "shortages": [],
    }


def test_an_undocumented_member_cannot_be_sent() -> None:
    with pytest.raises(TypeError):
        problem_body(400, "Bad.", colour="red")
