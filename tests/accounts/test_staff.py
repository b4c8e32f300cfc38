"""Staff flags: deactivation and demotion take effect on the user's next request."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import RefreshFamily
from shop.settings import Settings
from tests.accounts.helpers import bearer, register
from tests.support.factories import auth_headers, make_user


async def test_deactivated_user_loses_access_on_the_next_request(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    staff = await make_user(db, is_staff=True)
    body = await register(client)
    assert (
        await client.get("/api/auth/profile/", headers=bearer(body["access"]))
    ).status_code == 200

    deactivate = await client.patch(
        f"/api/admin/users/{body['user']['id']}/",
        json={"is_active": False},
        headers=auth_headers(settings, staff),
    )

    assert deactivate.status_code == 200 and deactivate.json()["is_active"] is False
    assert (
        await client.get("/api/auth/profile/", headers=bearer(body["access"]))
    ).status_code == 401
    assert (
        await client.post("/api/auth/token/refresh/", json={"refresh": body["refresh"]})
    ).status_code == 401
    login = await client.post(
        "/api/auth/login/", json={"email": "u1@example.com", "password": "StrongPass123!"}
    )
    assert login.status_code == 401


async def test_deactivation_revokes_refresh_families(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    staff = await make_user(db, is_staff=True)
    body = await register(client)

    await client.patch(
        f"/api/admin/users/{body['user']['id']}",
        json={"is_active": False},
        headers=auth_headers(settings, staff),
    )

    revoked = (
        select(func.count()).select_from(RefreshFamily).where(RefreshFamily.revoked_at.is_not(None))
    )
    assert await db.scalar(revoked) == 1


async def test_demoted_staff_loses_staff_routes_on_the_next_request(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    boss = await make_user(db, is_staff=True)
    demoted = await make_user(db, is_staff=True)
    customer = await make_user(db)
    as_demoted = auth_headers(settings, demoted)
    before = await client.patch(f"/api/admin/users/{customer.id}/", json={}, headers=as_demoted)

    await client.patch(
        f"/api/admin/users/{demoted.id}/",
        json={"is_staff": False},
        headers=auth_headers(settings, boss),
    )

    after = await client.patch(f"/api/admin/users/{customer.id}/", json={}, headers=as_demoted)
    assert (before.status_code, after.status_code) == (200, 403)
    assert (await client.get("/api/auth/profile/", headers=as_demoted)).json()["is_staff"] is False


async def test_customer_cannot_use_staff_routes(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    customer = await make_user(db)
    other = await make_user(db)

    response = await client.patch(
        f"/api/admin/users/{other.id}/",
        json={"is_staff": True},
        headers=auth_headers(settings, customer),
    )

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_staff_cannot_change_their_own_flags(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    staff = await make_user(db, is_staff=True)

    response = await client.patch(
        f"/api/admin/users/{staff.id}/",
        json={"is_staff": False},
        headers=auth_headers(settings, staff),
    )

    assert response.status_code == 409
    assert response.json()["detail"] == "You cannot change your own staff or active flags."
    assert (await client.get("/api/auth/profile/", headers=auth_headers(settings, staff))).json()[
        "is_staff"
    ] is True


async def test_changing_an_unknown_user_is_404(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    staff = await make_user(db, is_staff=True)

    response = await client.patch(
        "/api/admin/users/424242/", json={"is_active": False}, headers=auth_headers(settings, staff)
    )

    assert response.status_code == 404


async def test_promoted_user_gains_staff_routes_on_the_next_request(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    boss = await make_user(db, is_staff=True)
    user = await make_user(db)
    other = await make_user(db)
    as_user = auth_headers(settings, user)
    assert (
        await client.patch(f"/api/admin/users/{other.id}/", json={}, headers=as_user)
    ).status_code == 403

    await client.patch(
        f"/api/admin/users/{user.id}/",
        json={"is_staff": True},
        headers=auth_headers(settings, boss),
    )

    assert (
        await client.patch(f"/api/admin/users/{other.id}/", json={}, headers=as_user)
    ).status_code == 200
