"""The OpenAPI schema describes every list as DRF's envelope, with its page parameters."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    "path",
    [
        "/api/products",
        "/api/orders",
        "/api/admin/orders",
        "/api/admin/webhooks/deliveries",
    ],
)
async def test_every_list_is_documented_as_drfs_envelope(
    client: httpx.AsyncClient, path: str
) -> None:
    schema = (await client.get("/api/schema/")).json()

    operation = schema["paths"][path]["get"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    envelope = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert sorted(envelope["required"]) == ["count", "next", "previous", "results"]
    assert "count_is_estimate" in envelope["properties"]
    assert {"page", "limit", "offset"} <= {p["name"] for p in operation["parameters"]}
    assert "404" in operation["responses"]  # a page past the end
