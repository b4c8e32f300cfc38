"""Readiness names the part that is down; the cache being down degrades but does not fail it."""

from __future__ import annotations

from shop.app import create_app
from tests.conftest import make_settings, memcached_url
from tests.support.asgi import serve_in_process
from tests.support.servers import free_port


async def test_live(client):
    response = await client.get("/health/live/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_everything_is_up(client):
    response = await client.get("/health/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "queue": "ok",
        "cache": "ok",
    }


async def test_ready_is_503_naming_the_database_when_it_is_down(memcached):
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/shop"
    app = create_app(make_settings(dead, memcached_url(memcached), DB_CONNECT_TIMEOUT="1"))
    async with serve_in_process(app) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"]["status"] == "down"
    assert "database" in body["status"]


async def test_ready_reports_cache_degraded_but_serves(postgres_url):
    app = create_app(make_settings(postgres_url, f"127.0.0.1:{free_port()}"))
    async with serve_in_process(app) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "ok"
