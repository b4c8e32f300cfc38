"""Every error body is one `Problem`, documented once with the members clients read."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import httpx
import msgspec
import pytest

from shop.errors import Problem, ShopError, problem_body

SRC = Path(__file__).resolve().parents[2] / "src"


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


def test_every_member_a_raised_error_carries_is_declared_in_the_schema() -> None:
    # A member Problem does not declare would fail at the moment of answering (a 500):
    # find every `raise SomeShopError(..., member=...)` in the code instead.
    declared = set(Problem.__struct_fields__) | {"errors", "headers"}
    undeclared = []
    for path in (SRC / "shop").rglob("*.py"):
        module = importlib.import_module(
            ".".join(path.with_suffix("").relative_to(SRC).parts).removesuffix(".__init__")
        )
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            raised = getattr(module, getattr(node.exc.func, "id", ""), None)
            if isinstance(raised, type) and issubclass(raised, ShopError):
                undeclared += [
                    f"{path.name}:{node.lineno} {keyword.arg}"
                    for keyword in node.exc.keywords
                    if keyword.arg and keyword.arg not in declared
                ]

    assert undeclared == []
