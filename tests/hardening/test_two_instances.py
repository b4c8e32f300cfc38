"""Two API processes and two workers on one PostgreSQL and one memcached.

Concurrent checkout through both instances never oversells; a write through
one instance is seen at once through the other (the cache stays coherent);
every job runs exactly once.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from tests.support.factories import auth_headers, make_product, make_user

STOCK = 12
BUYERS = 30


async def wait_for(predicate, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.25)


async def test_two_instances_and_two_workers_stay_consistent(
    db, settings, processes, env, postgres_url
):
    product = await make_product(db, stock=STOCK, price=10)
    buyers = [await make_user(db) for _ in range(BUYERS)]
    staff = await make_user(db, is_staff=True)
    one, two = processes.api(env), processes.api(env)
    workers = [processes.worker(env), processes.worker(env)]
    staff_headers = auth_headers(settings, staff)

    async with (
        httpx.AsyncClient(base_url=one.url, timeout=60) as a,
        httpx.AsyncClient(base_url=two.url, timeout=60) as b,
    ):
        # Warm both caches with the product before the rush.
        assert (await a.get(f"/api/products/{product.id}/", headers=staff_headers)).json()[
            "stock"
        ] == STOCK
        await b.get("/api/products/", headers=staff_headers)

        body = {"items": [{"product_id": product.id, "quantity": 1}]}
        responses = await asyncio.gather(
            *(
                (a if n % 2 else b).post(
                    "/api/orders/", json=body, headers=auth_headers(settings, u)
                )
                for n, u in enumerate(buyers)
            )
        )
        statuses = sorted(r.status_code for r in responses)

        # Each instance now shows the stock the other one sold, not a cached older value.
        seen_by_a = (await a.get(f"/api/products/{product.id}/", headers=staff_headers)).json()
        listed_by_b = (await b.get("/api/products/", headers=staff_headers)).json()

        # A write through one instance, read at once through the other.
        patched = await b.patch(
            f"/api/products/{product.id}/", json={"price": "12.50"}, headers=staff_headers
        )
        after_patch = (await a.get(f"/api/products/{product.id}/", headers=staff_headers)).json()
        listed_after_patch = (await a.get("/api/products/", headers=staff_headers)).json()

        # Cancel an order through A; B's cached order detail must show it cancelled.
        won = next(r for r in responses if r.status_code == 201).json()
        owner = next(u for u in buyers if u.id == won["user"])
        owner_headers = auth_headers(settings, owner)
        await b.get(f"/api/orders/{won['id']}/", headers=owner_headers)
        cancelled = await a.patch(
            f"/api/orders/{won['id']}/", json={"status": "cancelled"}, headers=owner_headers
        )
        detail_from_b = (await b.get(f"/api/orders/{won['id']}/", headers=owner_headers)).json()
        restocked_by_b = (await b.get(f"/api/products/{product.id}/", headers=staff_headers)).json()

    assert statuses.count(201) == STOCK
    assert statuses.count(409) == BUYERS - STOCK, statuses  # out of stock, never a 5xx
    assert seen_by_a["stock"] == 0
    assert [p["stock"] for p in listed_by_b["results"] if p["id"] == product.id] == [0]
    assert patched.status_code == 200
    assert after_patch["price"] == "12.50"
    assert [p["price"] for p in listed_after_patch["results"] if p["id"] == product.id] == ["12.50"]
    assert cancelled.status_code == 200
    assert detail_from_b["status"] == "cancelled"
    assert restocked_by_b["stock"] == 1

    conn = await asyncpg.connect(postgres_url)
    try:
        sold = await conn.fetchval(
            "SELECT coalesce(sum(quantity), 0) FROM order_items oi "
            "JOIN orders o ON o.id = oi.order_id "
            "WHERE o.status <> 'cancelled'"
        )
        stock = await conn.fetchval("SELECT stock FROM products WHERE id = $1", product.id)
        orders = await conn.fetchval("SELECT count(*) FROM orders")

        async def invoices_done() -> bool:
            pending = await conn.fetchval(
                "SELECT count(*) FROM procrastinate_jobs "
                "WHERE task_name LIKE '%generate_invoice' AND status <> 'succeeded'"
            )
            done = await conn.fetchval(
                "SELECT count(*) FROM procrastinate_jobs "
                "WHERE task_name LIKE '%generate_invoice' AND status = 'succeeded'"
            )
            return pending == 0 and done == orders

        await wait_for(invoices_done)
        invoices_per_order = await conn.fetch(
            "SELECT o.id, count(i.*) AS n FROM orders o LEFT JOIN invoices i ON i.order_id = o.id "
            "GROUP BY o.id"
        )
        starts_per_job = await conn.fetch(
            "SELECT j.id, count(e.*) FILTER (WHERE e.type = 'started') AS starts "
            "FROM procrastinate_jobs j LEFT JOIN procrastinate_events e ON e.job_id = j.id "
            "WHERE j.task_name LIKE '%generate_invoice' GROUP BY j.id"
        )
    finally:
        await conn.close()

    assert orders == STOCK
    assert sold == STOCK - 1 and stock == 1  # never oversold; the cancelled unit came back
    assert {row["n"] for row in invoices_per_order} == {1}  # one invoice per order
    assert len(starts_per_job) == STOCK
    assert {row["starts"] for row in starts_per_job} == {1}  # every job ran exactly once
    for worker in workers:
        assert worker.process.poll() is None, worker.output()
