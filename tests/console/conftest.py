"""Fixtures of the console tests: a staff member, a browser-like HTTP client with its own
cookie jar, and signing in through the real login form (CSRF cookie and field included)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from tests.support.factories import PASSWORD, make_user

_TOKEN = re.compile(r'name="_csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


@pytest.fixture
async def staff(db: AsyncSession) -> User:
    return await make_user(db, email="staff@example.com", username="staffer", is_staff=True)


@pytest.fixture
async def browser_client(
    app: Litestar, client: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookies, like one browser (the app is already started by ``client``)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
        yield c


async def sign_in(
    c: httpx.AsyncClient, email: str, password: str = PASSWORD, next: str = "/admin/"
) -> httpx.Response:
    page = await c.get("/admin/login")
    assert page.status_code == 200
    return await c.post(
        "/admin/login",
        data={
            "email": email,
            "password": password,
            "_csrf_token": csrf_of(page.text),
            "next": next,
        },
    )


@pytest.fixture
async def signed_in(browser_client: httpx.AsyncClient, staff: User) -> httpx.AsyncClient:
    response = await sign_in(browser_client, staff.email)
    assert response.status_code == 303, response.text
    return browser_client
