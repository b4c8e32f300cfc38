"""What the database says after the order scenarios: every 2xx is one order, nothing oversold.

The checks read PostgreSQL directly (psycopg), before and after a scenario:
orders created = 2xx responses, stock sold = units ordered, no stock below zero.
Each reading is one statement, so it sees one consistent snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

__all__ = ["Snapshot", "job_queue", "snapshot", "verify"]

SETTLE_SECONDS = 1.0
"""Time for requests in flight when wrk stopped to finish before the database is read."""


@dataclass(frozen=True)
class Snapshot:
    max_order_id: int
    orders: int
    stock: int
    negative: int


def snapshot(database_url: str) -> Snapshot:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT coalesce(max(id), 0) FROM orders), (SELECT count(*) FROM orders),"
            " (SELECT coalesce(sum(stock), 0) FROM products),"
            " (SELECT count(*) FROM products WHERE stock < 0)"
        ).fetchone()
    assert row is not None
    return Snapshot(*(int(v) for v in row))


def verify(
    database_url: str, before: Snapshot, ok_responses: int, units_per_order: int, in_flight: int
) -> list[str]:
    """The invariants that failed, as sentences; empty when all hold.

    wrk stops at its deadline with up to one request per connection in flight;
    the server may still commit those, so up to ``in_flight`` orders more than
    the 2xx responses wrk saw are expected.
    """
    time.sleep(SETTLE_SECONDS)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM orders WHERE id > %(after)s),"
            " (SELECT coalesce(sum(quantity), 0) FROM order_items WHERE order_id > %(after)s),"
            " (SELECT coalesce(sum(stock), 0) FROM products),"
            " (SELECT count(*) FROM products WHERE stock < 0)",
            {"after": before.max_order_id},
        ).fetchone()
    assert row is not None
    created, ordered_units, stock, negative = (int(v) for v in row)
    sold = before.stock - stock
    problems = []
    if not ok_responses <= created <= ok_responses + in_flight:
        problems.append(f"{created} orders created for {ok_responses} 2xx responses")
    if sold != ordered_units:
        problems.append(f"stock fell by {sold} but the new orders hold {ordered_units} units")
    if ordered_units != created * units_per_order:
        problems.append(
            f"new orders hold {ordered_units} units, expected {created * units_per_order}"
        )
    if negative:
        problems.append(f"{negative} products have negative stock")
    return problems


def job_queue(database_url: str) -> dict[str, int]:
    """Procrastinate jobs by status (todo, doing, succeeded, failed...): the invoice backlog."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return {status: int(n) for status, n in rows}
