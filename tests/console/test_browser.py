"""The console in a real browser: Debian's Chromium driven by Playwright against the app served
by uvicorn, the acceptance walk of issue 15. One browser for the module; each test gets a fresh
context (its own cookies). Every page is screenshotted into ``artifacts/console/``, and any
console error (a CSP violation, a failed script) fails the test."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.settings import Settings
from tests.conftest import make_settings, memcached_url
from tests.orders.jobs_support import Receiver, running_worker
from tests.support.factories import PASSWORD, auth_headers, make_product, make_user
from tests.support.servers import unavailable

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("Chromium is not installed (Debian: apt-get install chromium)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class Console:
    """One staff member's browser tab on the console, collecting errors and screenshots."""

    def __init__(self, tab: Any, base: str) -> None:
        self.tab = tab
        self.base = base
        self.errors: list[str] = []
        tab.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: self.errors.append(str(e)))

    async def open(self, path: str) -> None:
        await self.tab.goto(self.base + path)

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await self.tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    async def sign_in(self, email: str, password: str = PASSWORD) -> None:
        await self.open("/admin/")
        await self.tab.fill("input[name=email]", email)
        await self.tab.fill("input[name=password]", password)
        await self.tab.click("button:has-text('Sign in')")
        await self.tab.wait_for_url(self.base + "/admin/")


@pytest_asyncio.fixture(loop_scope="session")
async def console(browser: Any, live_server: Any) -> AsyncIterator[Console]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    async def only_our_server(route: Any) -> None:
        if route.request.url.startswith(live_server.url):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_our_server)
    page = Console(await context.new_page(), live_server.url)
    try:
        yield page
    finally:
        await context.close()
    assert outside == [], f"the console reached outside the server: {outside}"
    assert page.errors == [], f"browser console errors: {page.errors}"


@pytest.fixture
async def staff(db: AsyncSession) -> User:
    return await make_user(db, email="staff@example.com", username="staffer", is_staff=True)


async def api_get(base: str, path: str, settings: Settings, user: User) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base) as c:
        return await c.get(path, headers=auth_headers(settings, user))


async def place_order(base: str, settings: Settings, user: User, product_id: int, qty: int) -> int:
    async with httpx.AsyncClient(base_url=base) as c:
        response = await c.post(
            "/api/orders/",
            json={"items": [{"product_id": product_id, "quantity": qty}]},
            headers=auth_headers(settings, user),
        )
    assert response.status_code == 201, response.text
    order_id: int = response.json()["id"]
    return order_id


async def test_sign_in_create_a_product_and_change_its_stock_in_the_list_row(
    console: Console, live_server: Any, settings: Settings, staff: User
):
    await console.open("/admin/")
    await console.shot("login")
    await console.sign_in(staff.email)
    await console.shot("dashboard")

    await console.open("/admin/products/new")
    await console.tab.fill("input[name=name]", "Walnut desk")
    await console.tab.fill("input[name=price]", "249.90")
    await console.tab.fill("input[name=stock]", "12")
    await console.tab.select_option("select[name=category]", "home")
    await console.tab.click("button:has-text('Create')")
    await console.tab.wait_for_url("**/admin/products/*")
    product_id = int(console.tab.url.rstrip("/").rsplit("/", 1)[1])
    await console.shot("product-edit")
    before = await api_get(live_server.url, f"/api/products/{product_id}/", settings, staff)
    assert before.json()["stock"] == 12  # now cached by the API

    await console.open("/admin/products/?search=walnut")
    row = console.tab.locator(f"#product-{product_id}")
    await row.locator("input[name=stock]").fill("3")
    await row.locator("button:has-text('Save')").click()
    await console.tab.wait_for_selector(f"#product-{product_id}.saved")
    await console.shot("products")

    after = await api_get(live_server.url, f"/api/products/{product_id}/", settings, staff)
    assert after.json()["stock"] == 3
    assert after.json()["price"] == "249.90"
    await console.open(f"/admin/products/{product_id}")
    assert "stock=12" in await console.tab.inner_text("body")  # the audit shows before/after


async def test_ship_an_order_from_the_console_and_see_the_webhook_delivery(
    console: Console,
    live_server: Any,
    settings: Settings,
    staff: User,
    db: AsyncSession,
    postgres_url: str,
    memcached: Any,
):
    customer = await make_user(db, email="ada@example.com", username="ada")
    product = await make_product(db, name="Kettle", price=Decimal("30.25"), stock=10)
    order_id = await place_order(live_server.url, settings, customer, product.id, 2)

    async with Receiver(script=[200]).serving() as receiver:
        hooks = make_settings(
            postgres_url, memcached_url(memcached), SHIPPED_WEBHOOK_URL=receiver.url
        )
        async with running_worker(hooks):
            await console.sign_in(staff.email)
            await console.open("/admin/orders/")
            await console.tab.fill("input[name=search]", "ada@")
            await console.tab.wait_for_selector(f"#order-{order_id}")
            await console.shot("orders")
            await console.tab.click(f"#order-{order_id} a")
            await console.tab.wait_for_selector("#moves")
            await console.tab.click("#moves button:has-text('shipped')")
            await console.tab.wait_for_selector("#order-status:has-text('shipped')")
            for _ in range(100):
                if "delivered" in await console.tab.inner_text("#deliveries"):
                    break
                await console.tab.wait_for_timeout(200)
                await console.tab.reload()
            await console.shot("order-detail")

    assert "delivered" in await console.tab.inner_text("#deliveries")
    assert "HTTP 200" in await console.tab.inner_text("#deliveries")
    history = await console.tab.inner_text("#history")
    assert "shipped" in history and "staffer" in history
    assert len(receiver.requests) == 1
    await console.open("/admin/webhooks/")
    assert str(order_id) in await console.tab.inner_text("#results")
    await console.shot("webhooks")


async def test_cancel_an_order_after_confirming_restores_its_stock(
    console: Console, live_server: Any, settings: Settings, staff: User, db: AsyncSession
):
    customer = await make_user(db)
    product = await make_product(db, stock=10)
    order_id = await place_order(live_server.url, settings, customer, product.id, 4)
    stock = await api_get(live_server.url, f"/api/products/{product.id}/", settings, staff)
    assert stock.json()["stock"] == 6

    await console.sign_in(staff.email)
    await console.open(f"/admin/orders/{order_id}")
    await console.tab.click("a:has-text('Cancel…')")
    await console.tab.wait_for_selector("#confirm-cancel")
    await console.shot("order-cancel-confirm")
    await console.tab.click("button:has-text('Yes, cancel the order')")
    await console.tab.wait_for_selector("#order-status:has-text('cancelled')")

    restored = await api_get(live_server.url, f"/api/products/{product.id}/", settings, staff)
    assert restored.json()["stock"] == 10


async def test_deactivate_a_user_and_their_token_is_refused(
    console: Console, live_server: Any, settings: Settings, staff: User, db: AsyncSession
):
    customer = await make_user(db, email="grace@example.com", username="grace")
    assert (
        await api_get(live_server.url, "/api/auth/profile", settings, customer)
    ).status_code == 200

    await console.sign_in(staff.email)
    await console.open("/admin/users/")
    await console.tab.fill("input[name=search]", "grace")
    await console.tab.wait_for_selector(f"#user-{customer.id}")
    await console.shot("users")
    await console.tab.click(f"#user-{customer.id} a")
    await console.tab.click("button:has-text('Deactivate')")
    await console.tab.wait_for_selector("#inactive")
    await console.shot("user-detail")

    refused = await api_get(live_server.url, "/api/auth/profile", settings, customer)
    assert refused.status_code == 401


async def test_sign_out_and_pages_need_signing_in_again(console: Console, staff: User):
    await console.sign_in(staff.email)
    await console.open("/admin/jobs/")
    await console.shot("jobs")

    await console.tab.click("button:has-text('Sign out')")
    await console.tab.wait_for_url("**/admin/login")
    await console.open("/admin/orders/")

    assert "/admin/login" in console.tab.url
    assert await console.tab.locator("input[name=password]").count() == 1


async def test_console_is_readable_on_a_phone(browser: Any, live_server: Any, staff: User, db):
    await make_product(db, name="Tiny lamp", stock=0)
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone = Console(await context.new_page(), live_server.url)
        await phone.sign_in(staff.email)
        await phone.open("/admin/products/")
        # Nothing but the table may scroll sideways: the page itself fits the screen.
        width = await phone.tab.evaluate("document.documentElement.scrollWidth")
        await phone.shot("products-phone")
    finally:
        await context.close()
    assert width <= 390
    assert phone.errors == []


async def test_filters_work_without_javascript(browser: Any, live_server: Any, staff: User, db):
    await make_product(db, name="Red chair", category="home")
    await make_product(db, name="Blue book", category="books")
    context = await browser.new_context(java_script_enabled=False)
    try:
        plain = Console(await context.new_page(), live_server.url)
        await plain.sign_in(staff.email)
        await plain.open("/admin/products/")
        await plain.tab.select_option("select[name=category]", "books")
        await plain.tab.click("form.filters button:has-text('Filter')")
        await plain.tab.wait_for_url("**category=books**")
        text = await plain.tab.inner_text("#results")
    finally:
        await context.close()
    assert "Blue book" in text and "Red chair" not in text
