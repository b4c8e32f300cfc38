"""How long `shop import django` takes on a Django-shaped database of the issue's size.

    nox -s bench -- --only import [--quick]      or      python -m bench.django_import [--scale 0.01]

A throwaway PostgreSQL (as the other benchmarks use) holds two databases: the
Django app's (``django``: tests/support/django_schema.py, filled server-side
with generate_series: 100,000 users, 1,000,000 products, 1,000,000 orders
with 3,000,000 items, and a sprinkle of odd rows) and the shop's (``shop``,
migrated). The figures: the first pass (everything new), then a second pass
over the unchanged source (the cut-over's final pass, nothing to write).
``--quick`` is the same at 1/100 of the size.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from tests.support.django_schema import DJANGO_SCHEMA

from bench.servers import HOST, _Procs, _start_postgres, require_tools

USERS, PRODUCTS, ORDERS, ITEMS_PER_ORDER = 100_000, 1_000_000, 1_000_000, 3

# One statement per table, all server-side. Every 10,000th row is odd in the
# ways the importer's rules handle (long name, zero price, unknown category,
# wiped items).
_FILL = [
    """
    INSERT INTO users_user (id, password, last_login, is_superuser, username, first_name,
                            last_name, is_staff, is_active, date_joined, email, phone, address)
    SELECT g, 'pbkdf2_sha256$1000000$' || md5(g::text) || '$' ||
              encode(sha256(g::text::bytea), 'base64'),
           CASE WHEN mod(g, 3) = 0 THEN now() - g * interval '1 minute' END, g = 1,
           'user' || g, '', '', g < 10, mod(g, 50) <> 0, now() - g * interval '5 minutes',
           'user' || g || '@example.com',
           CASE WHEN mod(g, 2) = 0 THEN '+1 555 ' || g END,
           CASE WHEN mod(g, 4) = 0 THEN g || ' Main Street' END
    FROM generate_series(1, %(users)s) g
    """,
    """
    INSERT INTO products_product (id, name, description, price, stock, category, created_at,
                                  updated_at)
    SELECT g,
           CASE WHEN mod(g, 10000) = 1 THEN repeat('Long name ', 25) ELSE 'Product ' || g END,
           'Description of product ' || g,
           CASE WHEN mod(g, 10000) = 2 THEN 0 ELSE mod(g, 500) + 0.99 END,
           mod(g, 100),
           CASE WHEN mod(g, 10000) = 3 THEN 'garden'
                ELSE (ARRAY['electronics','clothing','books','home','sports','toys'])[mod(g, 6) + 1]
           END,
           now() - g * interval '1 second', now() - g * interval '1 second'
    FROM generate_series(1, %(products)s) g
    """,
    # Three distinct products per order; every 10,000th order lost two items to the cascade.
    """
    INSERT INTO orders_orderitem (id, quantity, price_at_purchase, order_id, product_id)
    SELECT (o - 1) * %(per_order)s + k + 1, k + 1, mod(o * 7 + k * 3, 500) + 0.99,
           o, mod(o * 7 + k * 3, %(products)s) + 1
    FROM generate_series(1, %(orders)s) o, generate_series(0, %(per_order)s - 1) k
    WHERE mod(o, 10000) <> 4 OR k = 0
    """,
    """
    INSERT INTO orders_order (id, status, created_at, updated_at, user_id, total_price)
    SELECT o, (ARRAY['pending','processing','shipped','delivered','cancelled'])[mod(o, 5) + 1],
           now() - o * interval '30 seconds', now() - o * interval '20 seconds',
           mod(o, %(users)s) + 1,
           coalesce(s.total, 0) + CASE WHEN mod(o, 10000) = 4 THEN 10 ELSE 0 END
    FROM generate_series(1, %(orders)s) o
    LEFT JOIN (SELECT order_id, sum(quantity * price_at_purchase) AS total
               FROM orders_orderitem GROUP BY order_id) s ON s.order_id = o
    """,
]


def build_source(url: str, scale: float) -> dict[str, int]:
    sizes = {
        "users": max(int(USERS * scale), 10),
        "products": max(int(PRODUCTS * scale), 10),
        "orders": max(int(ORDERS * scale), 10),
        "per_order": ITEMS_PER_ORDER,
    }
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(DJANGO_SCHEMA)
        # Items first with deferred foreign keys, as Django's are: one transaction.
        with conn.transaction():
            conn.execute("SET CONSTRAINTS ALL DEFERRED")
            for statement in _FILL:
                conn.execute(statement, sizes)
        conn.execute("ANALYZE")
    return sizes


async def import_once(shop_url: str, source_url: str) -> tuple[float, str]:
    from shop.importer.django import ImportOptions, import_django
    from shop.settings import Settings

    settings = Settings.from_env(
        {"DATABASE_URL": shop_url, "SECRET_KEY": "bench-secret-key-long-enough-for-hs256"}
    )
    started = time.perf_counter()
    report = await import_django(settings, source_url, ImportOptions(), sys.stdout)
    seconds = time.perf_counter() - started
    report.print(sys.stdout, problems_per_rule=3)
    return seconds


def _start_postgres_patiently(procs: _Procs, workdir: Path) -> int:
    """`_start_postgres`, but its ``createdb`` may come while the server still says
    "starting up" (its port opens first): then wait and create the database here."""
    try:
        return _start_postgres(procs, workdir)
    except subprocess.CalledProcessError:
        command = list(procs.procs[-1][1].args)
        port = int(command[command.index("-p") + 1])
        for _ in range(60):
            time.sleep(0.5)
            try:
                with psycopg.connect(f"postgresql://postgres@{HOST}:{port}/postgres") as conn:
                    conn.autocommit = True
                    conn.execute("CREATE DATABASE shop")
                return port
            except psycopg.OperationalError:
                continue
        raise


def run(*, quick: bool = False, scale: float | None = None, keep: bool = False) -> None:
    require_tools()
    scale = scale if scale is not None else (0.01 if quick else 1.0)
    workdir = Path(tempfile.mkdtemp(prefix="shop-bench-import-"))
    procs = _Procs()
    try:
        port = _start_postgres_patiently(procs, workdir)
        base = f"postgresql://postgres@{HOST}:{port}"
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE django")
        started = time.perf_counter()
        sizes = build_source(f"{base}/django", scale)
        print(f"source built in {time.perf_counter() - started:.1f} s: {sizes}", flush=True)

        from shop.migrations import upgrade

        upgrade(f"postgresql+asyncpg://postgres@{HOST}:{port}/shop", "head")
        print("-- first pass: everything is new", flush=True)
        first = asyncio.run(import_once(f"{base}/shop", f"{base}/django"))
        print("-- second pass: nothing changed", flush=True)
        second = asyncio.run(import_once(f"{base}/shop", f"{base}/django"))
        total = sizes["users"] + sizes["products"] + sizes["orders"] * (1 + sizes["per_order"])
        print(
            f"IMPORT first pass {first:.1f} s ({total / first:,.0f} rows/s), "
            f"second pass (nothing changed) {second:.1f} s; target < 300 s at full size",
            flush=True,
        )
    finally:
        procs.stop_all()
        if keep:
            print(f"kept {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.django_import", description=__doc__)
    p.add_argument("--quick", action="store_true", help="1/100 of the size")
    p.add_argument("--scale", type=float, help="fraction of the full size (default 1)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
    run(quick=args.quick, scale=args.scale, keep=args.keep)


if __name__ == "__main__":
    main()
