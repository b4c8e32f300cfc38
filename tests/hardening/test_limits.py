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


DEEP = b"[" * 1000 + b"]" * 1000
BODY_ENDPOINTS = [
    ("POST", "/api/auth/register/"),
    ("POST", "/api/auth/login/"),
    ("POST", "/api/orders/"),
    ("PATCH", "/api/auth/profile/"),
    ("PATCH", "/api/products/1/"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
@pytest.mark.parametrize(
    "content_type",
    [
        None,  # no Content-Type at all
        "text/plain",
        "application/x-www-form-urlencoded",  # what curl -d sends by default
        "application/octet-stream",
    ],
)
@pytest.mark.parametrize("body", [DEEP, b'{"email":"u1@example.com","password":"x"}'])
async def test_a_body_not_declared_as_json_is_415(
    client, db, settings, method, path, content_type, body
):
    """Litestar would decode it as JSON anyway; a deep one used to be a 500 (RecursionError)."""
    headers = auth_headers(settings, await make_user(db, is_staff=True))
    if content_type is not None:
        headers["content-type"] = content_type

    response = await client.request(method, path, content=body, headers=headers)

    body = assert_problem(response, 415)
    assert "application/json" in body["detail"]


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
async def test_a_json_body_too_deep_is_400_on_every_body_endpoint(
    client, db, settings, method, path
):
    headers = {**JSON, **auth_headers(settings, await make_user(db, is_staff=True))}

    response = await client.request(method, path, content=DEEP, headers=headers)

    assert "nested" in assert_problem(response, 400)["detail"]


async def test_json_with_a_charset_parameter_is_still_json(client):
    response = await client.post(
        "/api/auth/login/",
        content=b'{"email":"nobody@example.com","password":"x"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )

    assert_problem(response, 401)


# Litestar coerces loosely (msgspec strict=False); each row was accepted before.
@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PATCH", "/api/admin/users/{other}/", {"is_active": "false"}, "is_active"),
        ("PATCH", "/api/admin/users/{other}/", {"is_active": "0"}, "is_active"),
        ("PATCH", "/api/admin/users/{other}/", {"is_active": 0}, "is_active"),
        ("PATCH", "/api/admin/users/{other}/", {"is_staff": "FALSE"}, "is_staff"),
        ("POST", "/api/products/", {"stock": "5"}, "stock"),
        ("POST", "/api/products/", {"stock": 5.0}, "stock"),
        ("POST", "/api/products/", {"name": 7}, "name"),
    ],
)
async def test_staff_writes_take_exactly_the_documented_types(
    client, db, settings, method, path, body, field
):
    staff = await make_user(db, is_staff=True)
    other = await make_user(db)
    product = {"name": "Lamp", "description": "", "price": "9.99", "stock": 1, "category": "home"}
    payload = {**product, **body} if path == "/api/products/" else body

    response = await client.request(
        method,
        path.format(other=other.id),
        json=payload,
        headers=auth_headers(settings, staff),
    )

    problem = assert_problem(response, 400)
    assert field in problem["detail"]
    assert problem["errors"][0]["field"] == field
    await db.refresh(other)
    assert other.is_active and not other.is_staff
    listed = await client.get("/api/products/", headers=auth_headers(settings, staff))
    assert listed.status_code == 200 and not listed.json().get(
        "results", listed.json().get("items")
    )


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/api/products/", "offset=1e3", "offset"),
        ("/api/products/", "limit=5.0", "limit"),
        ("/api/products/", "in_stock=1", "in_stock"),
        ("/api/products/", "in_stock=TRUE", "in_stock"),
        ("/api/orders/", "offset=1e3", "offset"),
        ("/api/admin/orders/", "user_id=1e0", "user_id"),
        ("/api/admin/webhooks/deliveries/", "limit=2e1", "limit"),
    ],
)
async def test_query_parameters_take_exactly_the_documented_types(
    client, db, settings, path, query, field
):
    staff = await make_user(db, is_staff=True)

    response = await client.get(f"{path}?{query}", headers=auth_headers(settings, staff))

    problem = assert_problem(response, 400)
    assert field in problem["detail"]


async def test_well_typed_booleans_and_integers_are_accepted(client, db, settings):
    staff = await make_user(db, is_staff=True)
    other = await make_user(db)
    headers = auth_headers(settings, staff)

    listed = await client.get("/api/products/?in_stock=false&offset=0&limit=5", headers=headers)
    changed = await client.patch(
        f"/api/admin/users/{other.id}/", json={"is_active": False}, headers=headers
    )

    assert listed.status_code == 200
    assert changed.status_code == 200 and changed.json()["is_active"] is False


async def test_every_operation_with_parameters_documents_the_414_a_long_url_gets(client):
    schema = (await client.get("/api/schema/")).json()
    undocumented = [
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict)
        and operation.get("parameters")
        and "414" not in operation.get("responses", {})
    ]
    assert undocumented == []

    response = await client.get("/api/admin/webhooks/deliveries", params={"limit": "9" * 9000})
    assert_problem(response, 414)
