"""Bad input is refused with problem details, never a 500, and changes nothing."""

from __future__ import annotations

import asyncio
import socket

import pytest

from shop.app import create_app
from tests.conftest import make_settings, memcached_url
from tests.support.asgi import serve_in_process
from tests.support.factories import auth_headers, make_product, make_user

JSON = {"content-type": "application/json"}


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        # a body above MAX_BODY_BYTES (1 MiB by default)
        ("POST", "/api/auth/register/", {"content": b"x" * 1_100_000, "headers": JSON}, 413),
        # the same without JSON content type: refused on Content-Length alone
        ("POST", "/api/auth/login/", {"content": b"x" * 1_100_000}, 413),
        # JSON nested far deeper than any field of the API (msgspec would raise RecursionError)
        (
            "POST",
            "/api/auth/login/",
            {"content": b'{"email":' + b"[" * 50_000, "headers": JSON},
            400,
        ),
        # a URL longer than HTTP_MAX_URL_BYTES
        ("GET", "/api/products/?search=" + "a" * 9000, {}, 414),
        # a header block larger than HTTP_MAX_HEADER_BYTES
        ("GET", "/health/live", {"headers": {"x-junk": "j" * 20_000}}, 431),
        # malformed JSON and wrong types
        ("POST", "/api/auth/login/", {"content": b'{"email": ', "headers": JSON}, 400),
        ("POST", "/api/auth/login/", {"json": {"email": 5, "password": []}}, 400),
        ("POST", "/api/auth/register/", {"json": ["not", "an", "object"]}, 400),
    ],
)
async def test_unreasonable_requests_get_problem_details(client, method, path, kwargs, status):
    response = await client.request(method, path, **kwargs)

    assert_problem(response, status)


async def test_deep_but_reasonable_json_still_reaches_the_handler(client):
    # 3 levels: a normal order body; the handler answers 401 (no token), not the depth check.
    response = await client.post("/api/orders/", json={"items": [{"product_id": 1, "quantity": 1}]})

    assert_problem(response, 401)


@pytest.mark.parametrize(
    "query",
    [
        "limit=100000",  # above the maximum page size
        "limit=0",  # below the minimum
        "limit=-5",
        "offset=-1",
        "limit=abc",  # not a number
        "limit=99999999999999999999999999",  # overflows any integer column
        "price_min=NaN",  # not a finite amount
        "ordering=password",  # not one of the allowed orderings
        "category=weapons",  # unknown enum value
    ],
)
async def test_absurd_pagination_and_filters_are_4xx(client, db, settings, query):
    user = await make_user(db)

    response = await client.get(f"/api/products/?{query}", headers=auth_headers(settings, user))

    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_too_many_items_in_one_order_is_refused_and_changes_nothing(
    postgres_url, memcached, db
):
    settings = make_settings(postgres_url, memcached_url(memcached), MAX_ORDER_ITEMS="3")
    user = await make_user(db)
    products = [await make_product(db, stock=5) for _ in range(4)]
    body = {"items": [{"product_id": p.id, "quantity": 1} for p in products]}

    async with serve_in_process(create_app(settings)) as client:
        response = await client.post(
            "/api/orders/", json=body, headers=auth_headers(settings, user)
        )
        listed = await client.get("/api/orders/", headers=auth_headers(settings, user))

    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert listed.json()["count"] == 0
    for product in products:
        await db.refresh(product)
        assert product.stock == 5


async def test_oversized_body_is_refused_before_it_is_sent(live_server):
    """Content-Length above the limit: 413 at once, without waiting for the body."""
    host, port = live_server.url.removeprefix("http://").split(":")

    def exchange() -> bytes:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /api/auth/login/ HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
            )
            return sock.recv(65536)  # no body sent: a server waiting for it would time out here

    reply = await asyncio.to_thread(exchange)

    assert reply.startswith(b"HTTP/1.1 413")
    assert b"application/problem+json" in reply


async def test_chunked_body_over_the_limit_is_413(client):
    async def chunks():
        for _ in range(40):
            yield b"x" * 32_768  # 1.25 MiB in total, no Content-Length

    response = await client.post("/api/auth/register/", content=chunks())

    assert_problem(response, 413)
