"""Orders per second for 32 concurrent clients: one hot product, then 100 different products.

Not run in CI. Creates a throwaway database on DATABASE_URL's server, migrates
it, runs the app in-process (same pools as production: asyncpg 10+10), and
drives it with httpx over ASGI. Every response must be 201; the script fails
otherwise. Usage:

    DATABASE_URL=postgresql://postgres@127.0.0.1:5433/postgres \\
        .venv/bin/python scripts/bench_orders.py [--seconds 10] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_settings
from tests.support.asgi import serve_in_process
from tests.support.factories import auth_headers, make_product, make_user
from tests.support.servers import Memcached, postgres_server_url, with_database

from shop.app import create_app
from shop.catalog.models import Product
from shop.migrations import upgrade_async


async def run(seconds: float, clients: int) -> int:
    server_url, _handle = postgres_server_url()
    name = f"shop_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    memcached = Memcached().start()
    url = with_database(server_url, name)
    failures = 0
    try:
        await upgrade_async("postgresql+asyncpg://" + url.split("://", 1)[1])
        settings = make_settings(url, memcached.url)
        app = create_app(settings)
        async with serve_in_process(app) as client:
            maker = app.state.session_maker
            async with maker() as db:
                users = [await make_user(db) for _ in range(clients)]
                hot = await make_product(db, price=Decimal("9.99"), stock=10**9)
                many = [
                    await make_product(db, price=Decimal("9.99"), stock=10**9) for _ in range(100)
                ]
                headers = [auth_headers(settings, u) for u in users]

            for label, products in (("1 hot product", [hot]), ("100 products", many)):
                stats = {"done": 0}
                errors: dict[int, int] = {}

                async def worker(
                    i: int,
                    deadline: float,
                    products: list[Product],
                    stats: dict[str, int],
                    errors: dict[int, int],
                ) -> None:
                    n = i
                    while time.perf_counter() < deadline:
                        product = products[n % len(products)]
                        n += clients
                        body = {"items": [{"product_id": product.id, "quantity": 1}]}
                        response = await client.post("/api/orders/", json=body, headers=headers[i])
                        if response.status_code == 201:
                            stats["done"] += 1
                        else:
                            errors[response.status_code] = errors.get(response.status_code, 0) + 1

                # Warm up pools and caches, then measure.
                warm_until = time.perf_counter() + 1.0
                await asyncio.gather(
                    *(worker(i, warm_until, products, {"done": 0}, {}) for i in range(clients))
                )
                start = time.perf_counter()
                await asyncio.gather(
                    *(worker(i, start + seconds, products, stats, errors) for i in range(clients))
                )
                done = stats["done"]
                elapsed = time.perf_counter() - start
                failures += sum(errors.values())
                print(
                    f"{label:>14}: {done / elapsed:7.1f} orders/s "
                    f"({done} orders in {elapsed:.1f} s, {clients} clients, errors: {errors or 0})"
                )
    finally:
        memcached.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args.seconds, args.clients)))


if __name__ == "__main__":
    main()
