"""Imported orders have no invoice until an operator asks for them; then the usual job numbers them."""

from __future__ import annotations

import asyncpg

from tests.accounts.helpers import bearer
from tests.importer.conftest import PASSWORDS, run_import
from tests.orders.jobs_support import eventually, jobs, running_worker


async def _login(client, email: str, user_id: int) -> dict[str, str]:
    response = await client.post(
        "/api/auth/login/", json={"email": email, "password": PASSWORDS[user_id]}
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["access"])


async def test_invoice_of_an_imported_order_says_there_is_none(client, settings, django_source):
    await run_import(settings, django_source)
    headers = await _login(client, "bruno@example.com", 3)

    response = await client.get("/api/orders/2/invoice/", headers=headers)

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "imported" in response.json()["detail"] and "no invoices" in response.json()["detail"]
    assert "retry-after" not in response.headers  # waiting would not help


async def test_requested_invoices_are_queued_then_numbered_without_gaps(
    client, settings, postgres_url, django_source
):
    await run_import(settings, django_source)
    _, printed = await run_import(settings, django_source, invoices=True)
    headers = await _login(client, "bruno@example.com", 3)

    queued = await jobs(postgres_url, "orders:generate_invoice")
    early = await client.get("/api/orders/2/invoice/", headers=headers)
    again, _ = await run_import(settings, django_source, invoices=True)

    assert sorted(job["args"] for job in queued) == sorted(
        f'{{"order_id": {i}}}' for i in (1, 2, 3, 5)
    )
    assert "invoice jobs queued for imported orders: 4" in printed
    assert again.notes[-1] == "invoice jobs queued for imported orders: 0"
    assert early.status_code == 404 and "not been generated yet" in early.json()["detail"]
    async with running_worker(settings):
        numbers = await eventually(lambda: _all_numbers(postgres_url, 4), timeout=60)
    response = await client.get("/api/orders/2/invoice/", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert sorted(int(number.split("-")[1]) for number in numbers) == [1, 2, 3, 4]


async def _all_numbers(postgres_url: str, expected: int) -> list[str] | None:
    conn = await asyncpg.connect(postgres_url)
    try:
        numbers = [row["number"] for row in await conn.fetch("SELECT number FROM invoices")]
    finally:
        await conn.close()
    return numbers if len(numbers) == expected else None
