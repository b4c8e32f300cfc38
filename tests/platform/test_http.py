"""The HTTP edge: problem+json for every error, request ids, security headers, the Host allow-list."""

from __future__ import annotations

import re

import pytest

from shop.app import create_app
from tests.conftest import make_settings, memcached_url
from tests.support.asgi import serve_in_process


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/no-such-thing", 404),  # unknown path under /api: JSON, not the docs' HTML 404
        ("GET", "/api/schema/no-such-file", 404),  # unknown path below the schema router
        ("GET", "/nothing-here", 404),  # unknown path outside /api
        ("POST", "/health/live", 405),  # known path, wrong method
        ("DELETE", "/health/ready/", 405),  # with a trailing slash too
    ],
)
async def test_errors_are_problem_json(client, method, path, status):
    response = await client.request(method, path)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]


async def test_request_id_is_echoed_when_sane(client):
    response = await client.get("/health/live", headers={"X-Request-ID": "abc-123.DEF_4"})

    assert response.headers["x-request-id"] == "abc-123.DEF_4"


@pytest.mark.parametrize(
    "incoming",
    [
        None,  # none sent: one is generated
        "has spaces in it",  # not a token: replaced
        "x" * 200,  # too long: replaced
    ],
)
async def test_request_id_is_generated_otherwise(client, incoming):
    headers = {"X-Request-ID": incoming} if incoming else {}
    response = await client.get("/health/live", headers=headers)

    request_id = response.headers["x-request-id"]
    assert request_id != incoming
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)


async def test_errors_carry_request_id_too(client):
    response = await client.get("/api/missing", headers={"X-Request-ID": "trace-me"})

    assert response.status_code == 404
    assert response.headers["x-request-id"] == "trace-me"


async def test_security_headers_on_every_response(client):
    for path in ("/health/live", "/api/missing", "/api/docs/"):
        response = await client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "content-security-policy" in response.headers
        assert "server" not in response.headers


async def test_unknown_host_is_rejected(postgres_url, memcached):
    settings = make_settings(
        postgres_url, memcached_url(memcached), ALLOWED_HOSTS="shop.example.com"
    )
    app = create_app(settings)
    async with serve_in_process(app, base_url="http://evil.example.net") as client:
        rejected = await client.get("/health/live")
        allowed = await client.get("/health/live", headers={"Host": "shop.example.com:8000"})

    assert rejected.status_code == 400
    assert rejected.headers["content-type"] == "application/problem+json"
    assert allowed.status_code == 200


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/", "/api/schema/", "/health/live"])
async def test_head_answers_like_get_without_a_body(client, path):
    get = await client.get(path)
    head = await client.head(path)

    assert head.status_code == get.status_code == 200
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.content == b""


async def test_ipv6_loopback_is_allowed_with_the_default_hosts(postgres_url, memcached):
    settings = make_settings(
        postgres_url, memcached_url(memcached), ALLOWED_HOSTS="localhost,127.0.0.1"
    )
    app = create_app(settings)
    async with serve_in_process(app, base_url="http://[::1]:8000") as client:
        loopback = await client.get("/health/live")
        other = await client.get("/health/live", headers={"Host": "[2001:db8::1]:8000"})

    assert loopback.status_code == 200
    assert other.status_code == 400
