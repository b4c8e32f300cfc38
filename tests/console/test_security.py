"""The console's doors: staff-only sign-in, CSRF on every change, sessions that end when the
staff member is deactivated or demoted, no page without a session, the API login's throttle."""

from __future__ import annotations

import base64

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.app import create_app
from shop.catalog.models import Product
from shop.console.models import ConsoleSession
from tests.conftest import make_settings, memcached_url
from tests.console.conftest import csrf_of, sign_in
from tests.support.asgi import serve_in_process
from tests.support.factories import auth_headers, make_product, make_user

WRONG = "No active account found with the given credentials."


async def test_staff_member_signs_in_and_sees_the_dashboard(browser_client, staff):
    response = await sign_in(browser_client, staff.email)

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/"
    cookie = response.headers["set-cookie"]
    assert "shop_console=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP in the test; Secure when the request is HTTPS
    token = browser_client.cookies["shop_console"]
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 32  # unguessable
    page = await browser_client.get("/admin/")
    assert page.status_code == 200 and "Orders today" in page.text


async def test_csrf_cookie_is_out_of_scripts_reach_and_sent_to_the_console_only(browser_client):
    page = await browser_client.get("/admin/login")

    cookie = page.headers["set-cookie"]
    assert cookie.startswith("shop_console_csrf=")
    assert "HttpOnly" in cookie and "Path=/admin" in cookie and "SameSite=lax" in cookie


async def test_session_cookie_is_secure_over_https(app, client, staff):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://localhost") as c:
        response = await sign_in(c, staff.email)

    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


@pytest.mark.parametrize("secure", ["true", "false"])
async def test_console_secure_cookie_setting_marks_both_cookies(
    postgres_url, memcached, staff, secure
):
    settings = make_settings(postgres_url, memcached_url(memcached), CONSOLE_SECURE_COOKIE=secure)
    async with serve_in_process(create_app(settings), base_url="https://localhost") as c:
        login_page = await c.get("/admin/login")
        response = await sign_in(c, staff.email)

    assert response.status_code == 303
    csrf_cookie, session_cookie = login_page.headers["set-cookie"], response.headers["set-cookie"]
    assert csrf_cookie.startswith("shop_console_csrf=")
    assert ("Secure" in csrf_cookie) is ("Secure" in session_cookie) is (secure == "true")


async def test_customer_cannot_sign_in_and_gets_the_wrong_password_message(
    browser_client, db: AsyncSession, staff
):
    customer = await make_user(db, email="buyer@example.com")

    as_customer = await sign_in(browser_client, customer.email)
    wrong_password = await sign_in(browser_client, staff.email, "not-the-password")

    assert as_customer.status_code == wrong_password.status_code == 401
    assert WRONG in as_customer.text and WRONG in wrong_password.text
    assert "shop_console=" not in as_customer.headers.get("set-cookie", "")
    assert (await browser_client.get("/admin/", follow_redirects=False)).status_code == 303


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/products/",
        "/admin/products/new",
        "/admin/orders/",
        "/admin/users/",
        "/admin/webhooks/",
        "/admin/jobs/",
    ],
)
async def test_no_page_without_a_session(browser_client, path):
    response = await browser_client.get(path)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login?next=")


async def test_signing_in_returns_to_the_page_that_asked_for_it(browser_client, staff):
    refused = await browser_client.get("/admin/orders/")
    login = await browser_client.get(refused.headers["location"])
    assert 'name="next" value="/admin/orders"' in login.text

    response = await sign_in(browser_client, staff.email, next="/admin/orders")

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/orders"
    assert (await browser_client.get("/admin/orders")).status_code == 200


@pytest.mark.parametrize(
    "next_page", ["https://evil.example/admin/", "//evil.example/admin/", "/api/orders/", ""]
)
async def test_signing_in_never_redirects_outside_the_console(browser_client, staff, next_page):
    response = await sign_in(browser_client, staff.email, next=next_page)

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/"


async def test_htmx_request_without_a_session_is_told_to_load_the_login_page(browser_client):
    response = await browser_client.get("/admin/orders/", headers={"HX-Request": "true"})

    assert response.status_code == 204 and response.content == b""  # nothing to swap in
    assert response.headers["hx-redirect"] == "/admin/login"


async def test_post_without_csrf_token_is_refused_and_changes_nothing(signed_in, db: AsyncSession):
    product = await make_product(db, stock=7)

    response = await signed_in.post(
        f"/admin/products/{product.id}/quick", data={"price": "1.00", "stock": "99"}
    )

    assert response.status_code == 403
    await db.refresh(product)
    assert product.stock == 7


async def test_post_with_a_forged_csrf_token_is_refused(signed_in, db: AsyncSession):
    product = await make_product(db, stock=7)

    response = await signed_in.post(
        f"/admin/products/{product.id}/quick",
        data={"price": "1.00", "stock": "99", "_csrf_token": "forged"},
    )

    assert response.status_code == 403
    await db.refresh(product)
    assert product.stock == 7


async def test_post_with_csrf_token_changes_stock(signed_in, db: AsyncSession):
    product = await make_product(db, stock=7)
    token = csrf_of((await signed_in.get("/admin/products/")).text)

    response = await signed_in.post(
        f"/admin/products/{product.id}/quick",
        data={"price": str(product.price), "stock": "99", "_csrf_token": token},
    )

    assert response.status_code == 303
    await db.refresh(product)
    assert product.stock == 99


async def test_json_api_with_bearer_token_needs_no_csrf(client, settings, staff):
    response = await client.post(
        "/api/products/",
        json={"name": "Lamp", "price": "10.00", "stock": 1, "category": "home"},
        headers=auth_headers(settings, staff),
    )

    assert response.status_code == 201


@pytest.mark.parametrize("change", ["is_active", "is_staff"])
async def test_deactivated_or_demoted_staff_session_ends_on_next_request(
    signed_in, db: AsyncSession, staff, change
):
    assert (await signed_in.get("/admin/products/")).status_code == 200
    user = await db.get(User, staff.id)
    setattr(user, change, False)
    await db.commit()

    response = await signed_in.get("/admin/products/")

    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login")


async def test_deactivated_staff_session_is_refused_on_another_instance(
    signed_in, live_server, db: AsyncSession, staff
):
    cookies = {"shop_console": signed_in.cookies["shop_console"]}
    async with httpx.AsyncClient(base_url=live_server.url, cookies=cookies) as other:
        assert (await other.get("/admin/")).status_code == 200
        user = await db.get(User, staff.id)
        user.is_active = False
        await db.commit()

        response = await other.get("/admin/", follow_redirects=False)

    assert response.status_code == 303


async def test_idle_session_expires(signed_in, db: AsyncSession):
    from sqlalchemy import text

    await db.execute(text("UPDATE console_sessions SET last_seen_at = now() - interval '2 hours'"))
    await db.commit()

    assert (await signed_in.get("/admin/")).status_code == 303


async def test_a_session_in_use_stays_open_its_use_recorded_once_a_minute(
    signed_in, db: AsyncSession
):
    from sqlalchemy import text

    async def last_use_after_a_page(seconds_ago: float) -> bool:
        """Whether a page view moved the recorded last use from ``seconds_ago``."""
        await db.execute(
            text("UPDATE console_sessions SET last_seen_at = now() - make_interval(secs => :s)"),
            {"s": seconds_ago},
        )
        await db.commit()
        assert (await signed_in.get("/admin/")).status_code == 200
        moved = await db.scalar(
            text("SELECT last_seen_at > now() - interval '10 seconds' FROM console_sessions")
        )
        await db.commit()
        return bool(moved)

    assert await last_use_after_a_page(20 * 60.0)  # recorded: the idle clock starts again
    assert not await last_use_after_a_page(30.0)  # recorded a moment ago: no write


async def test_sign_out_ends_the_session_server_side(signed_in, db: AsyncSession):
    cookie = signed_in.cookies["shop_console"]
    token = csrf_of((await signed_in.get("/admin/")).text)

    response = await signed_in.post("/admin/logout", data={"_csrf_token": token})

    assert response.status_code == 303 and response.headers["location"] == "/admin/login"
    assert (await db.scalars(select(ConsoleSession))).all() == []
    signed_in.cookies.set("shop_console", cookie, path="/admin")
    assert (await signed_in.get("/admin/")).status_code == 303


async def test_login_is_throttled_like_the_api(browser_client, client, staff, settings):
    for _ in range(settings.http.login_attempts):
        assert (await sign_in(browser_client, staff.email, "wrong-password")).status_code == 401

    console = await sign_in(browser_client, staff.email)
    api = await client.post("/api/auth/login", json={"email": staff.email, "password": "x"})

    assert console.status_code == 429 and "Retry-After" in console.headers
    assert api.status_code == 429  # one counter for the console and the API


async def test_console_pages_send_a_strict_csp(signed_in):
    response = await signed_in.get("/admin/")

    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "unsafe-inline" not in csp
    assert (await signed_in.get("/admin/static/htmx.min.js")).status_code == 200


async def test_the_console_stays_out_of_the_api_schema(client):
    schema = (await client.get("/api/schema/")).json()

    assert [path for path in schema["paths"] if path.startswith("/admin")] == []


async def test_staff_cannot_deactivate_themselves(signed_in, db: AsyncSession, staff):
    token = csrf_of((await signed_in.get(f"/admin/users/{staff.id}")).text)

    response = await signed_in.post(
        f"/admin/users/{staff.id}/flags", data={"action": "deactivate", "_csrf_token": token}
    )

    assert response.status_code == 409
    await db.refresh(staff)
    assert staff.is_active


async def test_product_form_shows_the_api_validation_messages(signed_in, db: AsyncSession):
    token = csrf_of((await signed_in.get("/admin/products/new")).text)

    response = await signed_in.post(
        "/admin/products/new",
        data={
            "name": "  ",
            "price": "1.001",
            "stock": "3",
            "category": "books",
            "_csrf_token": token,
        },
    )

    assert response.status_code == 400
    assert 'id="error-name"' in response.text and "must not be blank" in response.text
    assert "must have at most two decimal places" in response.text
    assert (await db.scalars(select(Product))).all() == []


async def test_signing_in_leaves_other_staff_members_sessions_open(
    signed_in, app, db: AsyncSession
):
    colleague = await make_user(db, email="colleague@example.com", is_staff=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as other:
        assert (await sign_in(other, colleague.email)).status_code == 303

    assert (await signed_in.get("/admin/")).status_code == 200  # still signed in


async def test_signing_in_deletes_idle_sessions(browser_client, staff, db: AsyncSession):
    from sqlalchemy import text

    await sign_in(browser_client, staff.email)
    await db.execute(text("UPDATE console_sessions SET last_seen_at = now() - interval '2 hours'"))
    await db.commit()

    await sign_in(browser_client, staff.email)

    assert len((await db.scalars(select(ConsoleSession))).all()) == 1
