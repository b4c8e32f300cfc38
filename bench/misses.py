"""Point 2 of issue 12: cache misses at a million rows, over HTTP and as query plans.

Every scenario is one request shape, sent with 16 connections to the second
API of the run, whose memcached never answers (`bench.servers`: a closed
port), so each request is a miss through the whole stack: the caller's
snapshot and the page are read from PostgreSQL. Target: p99 <= 50 ms.

`explain` runs ``EXPLAIN (ANALYZE, BUFFERS)`` of the statements the app sends
(``EXPLAIN (SUMMARY)``, planning only, of a count estimate's, as the app does)
for the same requests, built by the app's own statement builders (so the plan
is of the real SQL), and flags any sequential scan of ``products`` or
``orders``; docs/benchmarks.md keeps its output.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from bench.scale import _psql
from shop.catalog.repositories import live_statement, matching, page_statement
from shop.catalog.schemas import Category, Ordering, ProductQuery
from shop.catalog.stock import stocks_statement
from shop.orders.models import Order
from shop.orders.repositories import (
    HISTORY_STATEMENT,
    ITEMS_STATEMENT,
    order_conditions,
    order_page_statement,
)

__all__ = ["ADMIN_RANGE", "SCENARIOS", "explain"]

_now = datetime.now(UTC).replace(microsecond=0)
ADMIN_RANGE = (_now - timedelta(days=60), _now - timedelta(days=30))
_FROM, _TO = (moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in ADMIN_RANGE)

SCENARIOS: list[tuple[str, str, str]] = [
    # (name, path, whose token: any customer, the big customer, staff)
    ("P-default", "/api/products/", "any"),
    ("P-books", "/api/products/?category=books", "any"),
    ("P-books-price", "/api/products/?category=books&ordering=price", "any"),
    ("P--price", "/api/products/?ordering=-price", "any"),
    ("P-search2", "/api/products/?search=blue%20phone", "any"),
    ("P-search1", "/api/products/?search=abc", "any"),
    ("P-range-name", "/api/products/?price_min=10&price_max=20&ordering=name", "any"),
    ("P-in-stock", "/api/products/?in_stock=true", "any"),
    ("P-offset", "/api/products/?offset=10000", "any"),
    ("P-search-word", "/api/products/?search=kettle", "any"),
    ("O-mine", "/api/orders/", "big"),
    ("O-mine-1000", "/api/orders/?offset=1000", "big"),
    (
        "O-admin",
        f"/api/admin/orders/?status=shipped&created_from={_FROM}&created_to={_TO}",
        "staff",
    ),
    ("O-detail", "/api/orders/{order}/", "big"),
]


def _queries(big_customer: int, order_id: int, threshold: int) -> list[tuple[str, Any]]:
    """``(label, statement)`` of what each scenario sends: the page with its bounded count,
    and the statement whose planner estimate is the count beyond the threshold."""

    def product(**filters: Any) -> list[tuple[str, Any]]:
        query = ProductQuery(**filters)
        label = query.normalised()
        return [
            (f"products page and bounded count: {label}", page_statement(query, threshold)),
            (f"products count estimate: {label}", matching(query)),
        ]

    mine = order_conditions(big_customer, None, None, None)
    admin = order_conditions(None, "shipped", *ADMIN_RANGE)
    detail = {"order_ids": [order_id]}
    return [
        *product(),
        *product(category=Category.BOOKS),
        *product(category=Category.BOOKS, ordering=Ordering.PRICE),
        *product(ordering=Ordering.PRICE_DESC),
        *product(search="blue phone"),
        *product(search="abc"),
        *product(price_min=Decimal(10), price_max=Decimal(20), ordering=Ordering.NAME),
        *product(in_stock=True),
        *product(offset=10_000),
        *product(search="kettle"),
        ("stock figures of a cached page", stocks_statement(list(range(1, 21)))),
        ("product detail", live_statement(1)),
        ("own orders, first page", order_page_statement(mine, 20, 0, threshold)),
        ("own orders, offset=1000", order_page_statement(mine, 20, 1000, threshold)),
        ("admin orders: status and date range", order_page_statement(admin, 20, 0, threshold)),
        # The detail's three reads (OrderRepository.by_ids, items_with_products, history).
        ("order detail: the order", select(Order).where(Order.id.in_([order_id]))),
        ("order detail: items with their product's stock", ITEMS_STATEMENT.params(detail)),
        ("order detail: history", HISTORY_STATEMENT.params(detail)),
    ]


def _sql(statement: Any) -> str:
    return str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )


def explain(
    database_url: str, big_customer: int, order_id: int, threshold: int, out: Path
) -> list[str]:
    """Write every plan to ``out``; return the labels whose plan scans products or orders."""
    sections, scans = [], []
    for label, statement in _queries(big_customer, order_id, threshold):
        sql = _sql(statement)
        # The app only plans an estimate's statement (EXPLAIN): running it would count
        # every matching row, which is what the estimate avoids.
        how = "SUMMARY" if "estimate" in label else "ANALYZE, BUFFERS"
        plan = _psql(database_url, "-c", f"EXPLAIN ({how}) {sql}")
        sections.append(f"### {label}\n\n```sql\n{sql}\n```\n\n```\n{plan.strip()}\n```\n")
        if "Seq Scan on products" in plan or "Seq Scan on orders" in plan:
            scans.append(label)
    out.write_text("\n".join(sections))
    return scans
