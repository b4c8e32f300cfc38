"""The Django app's four tables, copied into temporary staging tables of the shop's database.

The source is opened read-only (``default_transaction_read_only``, and every
read in one ``REPEATABLE READ READ ONLY`` transaction, so the four tables are
one consistent snapshot while the Django app keeps running). Each table is
streamed with ``COPY ... TO STDOUT`` into ``COPY ... FROM STDIN`` of a
``TEMP`` table that lives in the import's transaction (``ON COMMIT DROP``).
Text format: COPY escapes newlines inside values, so every newline is one
row and progress is counted without parsing.

All further work (rules, upserts) is set-based SQL between the staging tables
and the shop's tables, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from shop.importer.report import Progress

__all__ = ["STAGED", "StagedTable", "copy_table", "count_source", "open_source"]


@dataclass(frozen=True, slots=True)
class StagedTable:
    name: str
    """The report's name of the table."""
    staging: str
    create: str
    copy_out: str
    copy_in: str
    count: str


STAGED = (
    StagedTable(
        "users",
        "src_users",
        "CREATE TEMP TABLE src_users (id bigint PRIMARY KEY, password varchar(128), "
        "last_login timestamptz, is_superuser boolean, username varchar(150), "
        "email varchar(254), is_staff boolean, is_active boolean, date_joined timestamptz, "
        "phone varchar(20), address text, refused text) ON COMMIT DROP",
        "COPY (SELECT id, password, last_login, is_superuser, username, email, is_staff, "
        "is_active, date_joined, phone, address FROM users_user) TO STDOUT",
        "COPY src_users (id, password, last_login, is_superuser, username, email, is_staff, "
        "is_active, date_joined, phone, address) FROM STDIN",
        "SELECT count(*) FROM users_user",
    ),
    StagedTable(
        "products",
        "src_products",
        "CREATE TEMP TABLE src_products (id bigint PRIMARY KEY, name varchar(255), "
        "description text, price numeric(10,2), stock integer, category varchar(20), "
        "created_at timestamptz, updated_at timestamptz, refused text) ON COMMIT DROP",
        "COPY (SELECT id, name, description, price, stock, category, created_at, updated_at "
        "FROM products_product) TO STDOUT",
        "COPY src_products (id, name, description, price, stock, category, created_at, "
        "updated_at) FROM STDIN",
        "SELECT count(*) FROM products_product",
    ),
    StagedTable(
        "orders",
        "src_orders",
        "CREATE TEMP TABLE src_orders (id bigint PRIMARY KEY, status varchar(20), "
        "created_at timestamptz, updated_at timestamptz, user_id bigint, "
        "total_price numeric(10,2), refused text) ON COMMIT DROP",
        "COPY (SELECT id, status, created_at, updated_at, user_id, total_price "
        "FROM orders_order) TO STDOUT",
        "COPY src_orders (id, status, created_at, updated_at, user_id, total_price) FROM STDIN",
        "SELECT count(*) FROM orders_order",
    ),
    StagedTable(
        "order items",
        "src_items",
        "CREATE TEMP TABLE src_items (id bigint PRIMARY KEY, quantity integer, "
        "price_at_purchase numeric(10,2), order_id bigint, product_id bigint, refused text) "
        "ON COMMIT DROP",
        "COPY (SELECT id, quantity, price_at_purchase, order_id, product_id "
        "FROM orders_orderitem) TO STDOUT",
        "COPY src_items (id, quantity, price_at_purchase, order_id, product_id) FROM STDIN",
        "SELECT count(*) FROM orders_orderitem",
    ),
)


async def open_source(url: str) -> psycopg.AsyncConnection[Any]:
    """A read-only connection to the Django app's database, inside one snapshot transaction."""
    conn = await psycopg.AsyncConnection.connect(
        url,
        options="-c default_transaction_read_only=on",
        application_name="shop-import-django",
    )
    await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    return conn


async def count_source(source: psycopg.AsyncConnection[Any], table: StagedTable) -> int:
    row = await (await source.execute(table.count)).fetchone()
    return int(row[0]) if row else 0


async def copy_table(
    source: psycopg.AsyncConnection[Any],
    target: psycopg.AsyncConnection[Any],
    table: StagedTable,
    progress: Progress,
) -> None:
    """Create ``table``'s staging table in the target's transaction and stream the rows into it."""
    await target.execute(table.create)
    async with (
        source.cursor().copy(table.copy_out) as out,
        target.cursor().copy(table.copy_in) as into,
    ):
        async for chunk in out:
            await into.write(chunk)
            progress.advance(bytes(chunk).count(b"\n"))
    # Fresh statistics: the rules and upserts join these tables with the shop's.
    await target.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table.staging)))
