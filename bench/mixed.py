"""M1: a shop that sells while people browse (issue 12, point 8).

28 connections read (20 on 50 product-list URLs, 8 on product details) while
4 connections place orders on random products, all for the same seconds,
with the job worker running as in every other scenario. Alongside, a
freshness probe orders one unit as a customer and at once reads that product
(its detail, and a search list showing it) through the API: a read showing
more stock than the order left is a violation of "a client never sees stale
data after its own write". Like S1-S3, M1 reads a warm cache: an unrecorded warm-up
reads the 50 lists for 2 s and every product detail it will read once. The list hit ratio is 1 - (page queries PostgreSQL
ran) / (list requests), from ``pg_stat_statements``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.load import Result
from bench.scale import _psql

__all__ = ["Probe", "page_queries", "reset_statements", "run_m1"]

_PAGE_QUERIES = (
    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
    "WHERE query LIKE 'SELECT products.id, products.name%' AND query LIKE '%LIMIT%'"
)


def reset_statements(database_url: str) -> None:
    _psql(database_url, "-c", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    _psql(database_url, "-c", "SELECT pg_stat_statements_reset()")


def page_queries(database_url: str) -> int:
    return int(_psql(database_url, "-c", _PAGE_QUERIES).strip() or 0)


@dataclass
class Probe:
    orders: int = 0
    reads: int = 0
    list_reads: int = 0
    violations: int = 0
    errors: int = 0


def _probe(base_url: str, token: str, product_ids: list[int], stop: threading.Event) -> Probe:
    found = Probe()
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(12)  # noqa: S311
    with httpx.Client(base_url=base_url, timeout=10) as client:
        while not stop.is_set():
            product_id = rng.choice(product_ids)
            body = {"items": [{"product_id": product_id, "quantity": 1}]}
            placed = client.post("/api/orders/", json=body, headers=headers)
            if placed.status_code != 201:
                found.errors += placed.status_code >= 500
                continue
            found.orders += 1
            bought = placed.json()["order_items"][0]["product"]
            left, name = bought["stock"], bought["name"]
            detail = client.get(f"/api/products/{product_id}/", headers=headers)
            listed = client.get("/api/products/", params={"search": name}, headers=headers)
            found.reads += 2
            found.list_reads += 1
            if detail.status_code >= 500 or listed.status_code >= 500:
                found.errors += 1
                continue
            seen = [detail.json()["stock"]]
            seen += [p["stock"] for p in listed.json()["results"] if p["id"] == product_id]
            found.violations += sum(1 for stock in seen if stock > left)
    return found


def _visit_details(base_url: str, token: str, product_ids: list[int]) -> None:
    """The unrecorded warm-up of the details: every product M1 reads, once (wrk's timed
    warm-up reaches a few hundred of the 2,000 products at a million rows)."""
    headers = {"Authorization": f"Bearer {token}"}
    chunks = [product_ids[i::8] for i in range(8)]

    def visit(ids: list[int]) -> None:
        with httpx.Client(base_url=base_url, timeout=10) as client:
            for product_id in ids:
                client.get(f"/api/products/{product_id}/", headers=headers)

    threads = [threading.Thread(target=visit, args=(chunk,)) for chunk in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run_m1(
    *,
    name: str,
    base_url: str,
    database_url: str,
    probe_token: str,
    product_ids: list[int],
    wrk: Callable[..., Result],
    duration: float,
    s1_rps: float | None,
) -> list[Result]:
    """Run M1 and return its parts; the summary is in the first result's ``extra``."""
    wrk(f"{name}-warmup", "lists50.lua", connections=20, duration=2)
    _visit_details(base_url, probe_token, product_ids)
    reset_statements(database_url)
    results: dict[str, Result] = {}
    stop = threading.Event()
    probe: dict[str, Probe] = {}

    def load(key: str, script: str, connections: int, *args: str) -> None:
        results[key] = wrk(
            f"{name}-{key}", script, *args, connections=connections, duration=duration
        )

    threads = [
        threading.Thread(target=load, args=("lists", "lists50.lua", 20)),
        threading.Thread(target=load, args=("details", "product_detail.lua", 8)),
        threading.Thread(target=load, args=("orders", "order_create.lua", 4, "spread")),
        threading.Thread(
            target=lambda: probe.setdefault("p", _probe(base_url, probe_token, product_ids, stop))
        ),
    ]
    for t in threads:
        t.start()
    for t in threads[:3]:
        t.join()
    stop.set()
    threads[3].join()
    pages = page_queries(database_url)
    lists, details, orders, p = results["lists"], results["details"], results["orders"], probe["p"]
    list_requests = lists.requests + p.list_reads
    hit_ratio = 1 - pages / list_requests if list_requests else 0.0
    read_rps = lists.rps + details.rps
    summary: dict[str, Any] = {
        "list_hit_ratio": round(hit_ratio, 4),
        "read_rps": round(read_rps, 1),
        "read_p99_ms": max(lists.p99_ms, details.p99_ms),
        "orders_per_s": round(orders.rps, 1),
        "order_p99_ms": orders.p99_ms,
        "s1_rps": s1_rps,
        "reads_vs_s1": round(read_rps / s1_rps, 3) if s1_rps else None,
        "freshness_orders": p.orders,
        "freshness_reads": p.reads,
        "freshness_violations": p.violations,
        "s5xx": lists.s5xx + details.s5xx + orders.s5xx + p.errors,
    }
    combined = Result(
        name=name,
        rps=read_rps,
        p50_ms=max(lists.p50_ms, details.p50_ms),
        p99_ms=summary["read_p99_ms"],
        requests=lists.requests + details.requests,
        ok=lists.ok + details.ok,
        non2xx=lists.non2xx + details.non2xx,
        s5xx=summary["s5xx"],
        socket_errors=lists.socket_errors + details.socket_errors,
        extra=summary,
    )
    return [combined, lists, details, orders]
