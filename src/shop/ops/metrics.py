"""``/metrics`` in the Prometheus text format.

Two kinds of numbers, from two places:

* **Per process**, counted as requests happen (Litestar's Prometheus plugin,
  ``prometheus_client``): ``shop_requests_total`` and
  ``shop_request_duration_seconds`` by method, route template and status;
  ``shop_requests_in_progress``; cache hits, misses and errors
  (``shop_cache_*_total``, copied from the cache's own counters at most once
  a second and at every scrape). With several uvicorn processes (``shop run --workers N``) the CLI
  points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory, every process
  writes its counters there, and any process answers a scrape with the sum.
* **Shop-wide**, read from PostgreSQL at scrape time, so they are right however
  many API instances and workers there are, and cover what happens inside
  workers (which serve no HTTP): ``shop_orders_created_total``,
  ``shop_orders{status}``, ``shop_jobs{task,status}`` (the Procrastinate
  queue), ``shop_webhook_attempts_total{outcome}`` and
  ``shop_webhook_events{outcome}``. If the database does not answer within
  two seconds these are left out and ``shop_database_up`` is 0; the scrape
  itself still succeeds.

Open by default (Prometheus scrapes without credentials); with
``METRICS_TOKEN`` set it needs ``Authorization: Bearer <METRICS_TOKEN>``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import text

from shop.errors import Unauthorized, problem_responses
from shop.settings import Settings

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["metrics_config", "metrics_endpoint"]

logger = logging.getLogger("shop.metrics")

_DB_TIMEOUT = 2.0

_CACHE_COUNTERS = {
    name: Counter(f"shop_cache_{name}_total", doc)
    for name, doc in (
        ("hits", "Cache lookups answered from the cache"),
        ("misses", "Cache lookups that went to the database"),
        ("errors", "Cache calls that failed or timed out (counted as misses)"),
    )
}


class ShopPrometheusMiddleware(PrometheusMiddleware):
    """The plugin's request metrics, plus the cache counters brought up to date per request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            cache = getattr(scope["app"].state, "cache", None)
            if cache is not None and time.monotonic() >= _next_sync.get(id(cache.stats), 0.0):
                _sync_cache_counters(cache.stats)


CACHE_SYNC_SECONDS = 1.0
"""How often a process copies its cache counters to Prometheus (and at every scrape it answers).

Each copy writes the multiprocess files under a lock; once per request it was
a visible share of a cached read. A scrape may see another process's cache
counters up to this much behind."""

_synced: dict[int, dict[str, int]] = {}
"""Per cache object (tests run several apps in one process): the counts already exported."""
_next_sync: dict[int, float] = {}


def _sync_cache_counters(stats: Any) -> None:
    # The cache counts in plain ints (cheap, and it has no Prometheus dependency);
    # the difference since the last sync goes to the process's counters.
    _next_sync[id(stats)] = time.monotonic() + CACHE_SYNC_SECONDS
    seen = _synced.setdefault(id(stats), {})
    for name, counter in _CACHE_COUNTERS.items():
        now = getattr(stats, name, 0)
        delta = now - seen.get(name, 0)
        if delta > 0:
            counter.inc(delta)
        seen[name] = now


def metrics_config() -> PrometheusConfig:
    return PrometheusConfig(
        app_name="shop",
        prefix="shop",
        group_path=True,  # label by route template (/api/orders/{order_id:int}), not by raw path
        exclude=["^/metrics", "^/api/docs/assets"],
        middleware_class=ShopPrometheusMiddleware,
        buckets=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
    )


class _Prefetched:
    """A collector that yields metric families computed before the scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def _shop_wide(engine: AsyncEngine) -> list[Metric]:
    up = GaugeMetricFamily("shop_database_up", "1 when PostgreSQL answered the metrics queries")
    try:
        families = await asyncio.wait_for(_query_shop_wide(engine), _DB_TIMEOUT)
    except Exception as exc:  # a scrape must not fail because the database is down
        logger.warning("metrics: database queries failed: %s", type(exc).__name__)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    return [up, *families]


async def _query_shop_wide(engine: AsyncEngine) -> list[Metric]:
    async with engine.connect() as conn:
        orders_by_status = (
            await conn.execute(text("SELECT status, count(*) FROM orders GROUP BY status"))
        ).all()
        jobs = (
            await conn.execute(
                text(
                    "SELECT task_name, status::text, count(*) FROM procrastinate_jobs "
                    "GROUP BY task_name, status"
                )
            )
        ).all()
        attempts = (
            await conn.execute(
                text("SELECT outcome, count(*) FROM webhook_attempts GROUP BY outcome")
            )
        ).all()
        events = (
            await conn.execute(
                text("SELECT outcome, count(*) FROM webhook_events GROUP BY outcome")
            )
        ).all()

    created = CounterMetricFamily(
        "shop_orders_created", "Orders ever created (orders are never deleted)"
    )
    created.add_metric([], sum(count for _, count in orders_by_status))
    orders = GaugeMetricFamily("shop_orders", "Orders by current status", labels=["status"])
    for status, count in orders_by_status:
        orders.add_metric([status], count)
    job_gauge = GaugeMetricFamily(
        "shop_jobs",
        "Background jobs in the queue table by task and status",
        labels=["task", "status"],
    )
    for task, status, count in jobs:
        job_gauge.add_metric([task, status], count)
    attempt_counter = CounterMetricFamily(
        "shop_webhook_attempts", "Webhook delivery attempts by outcome", labels=["outcome"]
    )
    for outcome, count in attempts:
        attempt_counter.add_metric([outcome], count)
    event_gauge = GaugeMetricFamily(
        "shop_webhook_events", "Webhook notifications by outcome", labels=["outcome"]
    )
    for outcome, count in events:
        event_gauge.add_metric([outcome], count)
    return [created, orders, job_gauge, attempt_counter, event_gauge]


def _process_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def _check_token(request: Request[Any, Any, Any], token: str | None) -> None:
    if not token:
        return
    presented = request.headers.get("authorization", "")
    scheme, _, value = presented.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        value.strip().encode(), token.encode()
    ):
        raise Unauthorized("/metrics needs Authorization: Bearer <METRICS_TOKEN>.")


@get(
    "/metrics",
    summary="Prometheus metrics",
    tags=["operations"],
    media_type="text/plain",
    opt={"exclude_from_auth": True},
    security=[{}],
    responses=problem_responses(401, s401="METRICS_TOKEN is set and the bearer token is not it"),
    cache_control=None,
)
async def metrics_endpoint(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Response[bytes]:
    """Request, cache, order, job and webhook metrics in the Prometheus text format."""
    _check_token(request, settings.http.metrics_token)
    cache = getattr(request.app.state, "cache", None)
    if cache is not None:
        _sync_cache_counters(cache.stats)
    shop_wide = CollectorRegistry(auto_describe=False)
    shop_wide.register(_Prefetched(await _shop_wide(request.app.state.engine)))
    body = _process_metrics() + generate_latest(shop_wide)
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})
