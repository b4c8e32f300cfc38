"""Values PostgreSQL cannot store are the client's error: 400 problem+json, nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from shop.accounts.models import User
from shop.catalog.models import Product
from tests.support.factories import auth_headers, make_user


@pytest.mark.parametrize(
    "field",
    [
        "name",  # through advanced-alchemy's repository, which wraps the driver error
        "description",
    ],
)
async def test_nul_character_in_a_product_is_400(client, db, settings, field):
    staff = await make_user(db, is_staff=True)
    body = {"name": "Lamp", "description": "d", "price": "9.99", "stock": 1, "category": "home"}
    body[field] = "bad\u0000value"

    response = await client.post("/api/products/", json=body, headers=auth_headers(settings, staff))

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert (await db.execute(select(func.count()).select_from(Product))).scalar_one() == 0


async def test_nul_character_at_registration_is_400(client, db):
    response = await client.post(
        "/api/auth/register/",
        json={
            "username": "nul\u0000user",
            "email": "nul@example.com",
            "password": "Quite-Long-Passphrase-7",
            "password_confirm": "Quite-Long-Passphrase-7",
        },
    )

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["username"]
    assert (await db.execute(select(func.count()).select_from(User))).scalar_one() == 0


async def test_query_parameter_errors_name_their_source_plainly(client, db, settings):
    user = await make_user(db)

    response = await client.get("/api/products/?limit=abc", headers=auth_headers(settings, user))

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "limit", "message": "Expected `int`, got `str`", "source": "query"}
    ]
