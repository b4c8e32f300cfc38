"""Security headers, CORS by allow-list, and the per-client registration limit."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from shop.app import create_app
from tests.conftest import make_settings, memcached_url
from tests.hardening.conftest import Processes, shop_env
from tests.support.asgi import serve_in_process


@pytest.fixture(scope="module")
def api_process(postgres_url, memcached, tmp_path_factory):
    procs = Processes(tmp_path_factory.mktemp("edge"))
    yield procs.api(shop_env(postgres_url, memcached_url(memcached)))
    procs.stop_all()


@pytest.mark.parametrize(
    "path",
    [
        "/health/live",  # a plain JSON route
        "/api/products/",  # 401 problem
        "/api/nowhere",  # 404 problem from the router
        "/metrics",  # text, public
        "/api/docs/",  # HTML page
        "/api/schema/",  # the OpenAPI document
    ],
)
def test_every_response_carries_security_headers(api_process, path):
    """Against `shop run` itself: the banner is uvicorn's, so only the real CLI can show it gone."""
    response = httpx.get(api_process.url + path)

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "server" not in response.headers  # no version banner from uvicorn
    assert response.headers["x-request-id"]


def test_production_logs_are_json_lines_with_the_request_id(api_process):
    httpx.get(api_process.url + "/api/nowhere", headers={"X-Request-ID": "trace-json-42"})

    def entries() -> list[dict]:
        lines = api_process.output().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    deadline = time.monotonic() + 10  # the access line is written just after the response
    while not (mine := [e for e in entries() if e.get("request_id") == "trace-json-42"]):
        assert time.monotonic() < deadline, api_process.output()[-2000:]
        time.sleep(0.1)
    assert mine[-1]["logger"] == "shop.access"
    http = mine[-1]["http"]
    assert (http["method"], http["path"], http["status"]) == ("GET", "/api/nowhere", 404)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries())


async def test_docs_csp_allows_only_this_server(client):
    csp = (await client.get("/api/docs/")).headers["content-security-policy"]

    assert "script-src 'self'" in csp
    assert "http" not in csp  # no CDN host is allowed


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/auth/profile/", "GET, OPTIONS, PATCH"),  # Litestar alone would say GET only
        ("/api/orders", "GET, OPTIONS, POST"),
        ("/api/products/1/", "DELETE, GET, OPTIONS, PATCH, PUT"),
    ],
)
async def test_options_lists_every_method_of_the_path(client, path, allow):
    response = await client.options(path)

    assert response.status_code == 204
    assert response.headers["allow"] == allow


async def test_cors_is_off_by_default(client):
    response = await client.options(
        "/api/products/",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )

    assert "access-control-allow-origin" not in response.headers


async def test_cors_answers_only_allowed_origins(postgres_url, memcached):
    settings = make_settings(
        postgres_url, memcached_url(memcached), CORS_ORIGINS="https://shop.example"
    )
    preflight = {"Access-Control-Request-Method": "POST"}
    async with serve_in_process(create_app(settings)) as client:
        allowed = await client.options(
            "/api/auth/login/", headers={"Origin": "https://shop.example", **preflight}
        )
        refused = await client.options(
            "/api/auth/login/", headers={"Origin": "https://evil.example", **preflight}
        )

    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert refused.headers.get("access-control-allow-origin") != "https://evil.example"


def registration(n: int) -> dict[str, str]:
    return {
        "username": f"flood{n}",
        "email": f"flood{n}@example.com",
        "password": "Sturdy-Lantern-93",
        "password_confirm": "Sturdy-Lantern-93",
    }


async def test_registration_is_rate_limited_per_client_across_instances(postgres_url, memcached):
    """The counter lives in PostgreSQL: two instances share it."""
    settings = make_settings(postgres_url, memcached_url(memcached), REGISTER_PER_MINUTE="3")
    async with (
        serve_in_process(create_app(settings)) as one,
        serve_in_process(create_app(settings)) as two,
    ):
        statuses = [
            (await (one if n % 2 else two).post("/api/auth/register/", json=registration(n)))
            for n in range(5)
        ]

    assert [r.status_code for r in statuses[:3]] == [201, 201, 201]
    limited = statuses[3]
    assert limited.status_code == 429
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert int(limited.headers["retry-after"]) > 0
    assert statuses[4].status_code == 429


async def test_failed_logins_are_throttled_with_retry_after(client):
    for _ in range(5):
        await client.post(
            "/api/auth/login/", json={"email": "nobody@example.com", "password": "wrong-guess-1"}
        )

    response = await client.post(
        "/api/auth/login/", json={"email": "nobody@example.com", "password": "wrong-guess-1"}
    )

    assert response.status_code == 429
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) > 0
