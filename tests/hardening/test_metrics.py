"""/metrics: Prometheus text with request, cache, order, job and webhook numbers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shop.app import create_app
from tests.conftest import make_settings, memcached_url
from tests.support.asgi import serve_in_process
from tests.support.factories import auth_headers, make_product, make_user


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(parsed, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in parsed.items() if n == name and wanted <= ls)


async def test_metrics_count_requests_orders_jobs_and_cache(client, db, settings):
    user = await make_user(db)
    product = await make_product(db, stock=10, price=5)
    headers = auth_headers(settings, user)
    before = samples((await client.get("/metrics")).text)

    for _ in range(2):  # the second list is served from the cache
        await client.get("/api/products/", headers=headers)
    created = await client.post(
        "/api/orders/", json={"items": [{"product_id": product.id, "quantity": 1}]}, headers=headers
    )
    await client.get("/api/orders/999999/", headers=headers)
    response = await client.get("/metrics")

    assert created.status_code == 201
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # by route template, method and status; not by raw path
    assert grew("shop_requests_total", path="/api/products", method="GET", status_code="200") == 2
    assert grew("shop_requests_total", path="/api/orders", method="POST", status_code="201") == 1
    assert grew("shop_requests_total", method="GET", status_code="404") == 1
    assert not any("999999" in dict(ls).get("path", "") for _, ls in after)
    assert grew("shop_request_duration_seconds_count", path="/api/products") == 2
    assert grew("shop_cache_hits_total") >= 1
    assert grew("shop_cache_misses_total") >= 1
    # read from PostgreSQL: right whichever instance or worker did the work
    assert value(after, "shop_database_up") == 1
    assert value(after, "shop_orders_created_total") == 1
    assert value(after, "shop_orders", status="pending") == 1
    assert value(after, "shop_jobs", status="todo") >= 1  # the invoice job, waiting for a worker


async def test_metrics_need_the_token_when_one_is_set(postgres_url, memcached):
    settings = make_settings(postgres_url, memcached_url(memcached), METRICS_TOKEN="scrape-me")
    async with serve_in_process(create_app(settings)) as client:
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})

    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "shop_requests_total" in right.text


def test_metrics_add_up_across_uvicorn_worker_processes(processes, env, tmp_path):
    """`shop run --workers 2`: every process's requests count, whichever process answers."""
    metrics_dir = tmp_path / "metrics"
    api = processes.api({**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, workers=2)

    def writers() -> set[str]:
        return {p.stem.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}

    def hit(_: int) -> None:  # a new connection each: the kernel hands it to either process
        httpx.get(f"{api.url}/health/live", headers={"Connection": "close"}, timeout=30)

    # Which process accepts a connection is the kernel's choice: send concurrent
    # batches until both have served some (bounded), counting every request.
    sent, deadline = 0, time.monotonic() + 60
    with ThreadPoolExecutor(max_workers=8) as pool:
        while len(writers()) < 2 and time.monotonic() < deadline:
            list(pool.map(hit, range(20)))
            sent += 20
    assert len(writers()) >= 2  # both processes wrote counters

    with httpx.Client(base_url=api.url, timeout=30) as client:
        scrapes = [samples(client.get("/metrics").text) for _ in range(6)]
    for parsed in scrapes:  # every scrape, from either process, sees all of them
        assert value(parsed, "shop_requests_total", path="/health/live") == sent
