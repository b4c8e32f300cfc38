"""The upserts: staging rows that were not refused go into the shop's tables, by id.

The join with the shop's table is bounded by the batch's id range too: its
statistics are stale while the import fills it (see `ANALYZE_AFTER`), and an
unbounded join could scan all of it for every batch.

Each statement computes the incoming rows (the rules' rewrites applied), keeps
those that are new or differ from the shop's row (``IS DISTINCT FROM``, one
join), and inserts them with ``ON CONFLICT (id) DO UPDATE ... WHERE`` the
shop's row is one the import made (``imported_at`` set). Unchanged rows are
filtered out by the join rather than by the conflict clause, which would lock
(and so write) every existing row: a second run over an unchanged source
writes nothing and counts nothing as updated, which keeps the cut-over's
final pass short. Counts come back from ``RETURNING (xmax = 0)``, aggregated
in the database. Each statement runs per id range (`id_batches`), all in the
import's one transaction.

The source wins: until the cut-over the Django app is the system of record,
so a field changed in the source is changed in the shop. One exception: a
password the shop has rehashed at login is kept unless the Django hash itself
changed since the last pass (``users.imported_password_hash``).
"""

from __future__ import annotations

from typing import Any, LiteralString

import psycopg

__all__ = ["UPSERTS", "changed_user_ids", "count_upsert", "id_batches", "run_statement"]

_USERS: LiteralString = """
WITH incoming AS (
    SELECT s.id, lower(s.email) AS email, coalesce(n.username, s.username) AS username,
           s.password AS password_hash, coalesce(s.phone, '') AS phone,
           coalesce(s.address, '') AS address, s.is_staff OR s.is_superuser AS is_staff,
           s.is_active, s.date_joined, now() AS imported_at,
           s.password AS imported_password_hash
    FROM src_users s LEFT JOIN src_usernames n USING (id)
    WHERE s.refused IS NULL AND s.id >= %(low)s AND s.id < %(high)s
), upserted AS (
    INSERT INTO users AS t (id, email, username, password_hash, phone, address, is_staff,
                            is_active, date_joined, imported_at, imported_password_hash)
    SELECT i.* FROM incoming i
    LEFT JOIN users c ON c.id = i.id AND c.id >= %(low)s AND c.id < %(high)s
    WHERE c.id IS NULL OR (
        c.imported_at IS NOT NULL
        AND (c.email, c.username, c.phone, c.address, c.is_staff, c.is_active, c.date_joined,
             c.imported_password_hash)
            IS DISTINCT FROM
            (i.email, i.username, i.phone, i.address, i.is_staff, i.is_active, i.date_joined,
             i.imported_password_hash))
    ON CONFLICT (id) DO UPDATE SET
        email = excluded.email, username = excluded.username,
        password_hash = CASE WHEN t.imported_password_hash IS DISTINCT FROM
                                  excluded.imported_password_hash
                             THEN excluded.password_hash ELSE t.password_hash END,
        imported_password_hash = excluded.imported_password_hash,
        phone = excluded.phone, address = excluded.address, is_staff = excluded.is_staff,
        is_active = excluded.is_active, date_joined = excluded.date_joined,
        imported_at = excluded.imported_at, updated_at = now()
    WHERE t.imported_at IS NOT NULL
    RETURNING xmax = 0 AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""

_PRODUCTS: LiteralString = """
WITH incoming AS (
    SELECT s.id,
           CASE WHEN length(s.name) > 200 THEN left(s.name, 199) || '…' ELSE s.name END AS name,
           s.description,
           CASE WHEN s.price > 0 THEN s.price ELSE %(placeholder)s::numeric END AS price,
           s.stock,
           CASE WHEN s.category = ANY (%(categories)s) THEN s.category
                ELSE %(fallback)s END AS category,
           NOT (s.price > 0 AND s.category = ANY (%(categories)s)) AS archived,
           s.created_at, s.updated_at, now() AS imported_at
    FROM src_products s
    WHERE s.refused IS NULL AND s.id >= %(low)s AND s.id < %(high)s
), upserted AS (
    INSERT INTO products AS t (id, name, description, price, stock, category, archived,
                               created_at, updated_at, imported_at)
    SELECT i.* FROM incoming i
    LEFT JOIN products c ON c.id = i.id AND c.id >= %(low)s AND c.id < %(high)s
    WHERE c.id IS NULL OR (
        c.imported_at IS NOT NULL
        AND (c.name, c.description, c.price, c.stock, c.category, c.archived, c.created_at,
             c.updated_at)
            IS DISTINCT FROM
            (i.name, i.description, i.price, i.stock, i.category, i.archived, i.created_at,
             i.updated_at))
    ON CONFLICT (id) DO UPDATE SET
        name = excluded.name, description = excluded.description, price = excluded.price,
        stock = excluded.stock, category = excluded.category, archived = excluded.archived,
        created_at = excluded.created_at, updated_at = excluded.updated_at,
        imported_at = excluded.imported_at
    WHERE t.imported_at IS NOT NULL
    RETURNING xmax = 0 AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""

_ORDERS: LiteralString = """
WITH incoming AS (
    SELECT s.id, s.user_id, s.status, s.total_price, s.created_at, s.updated_at,
           now() AS imported_at
    FROM src_orders s
    WHERE s.refused IS NULL AND s.id >= %(low)s AND s.id < %(high)s
), upserted AS (
    INSERT INTO orders AS t (id, user_id, status, total_price, created_at, updated_at,
                             imported_at)
    SELECT i.* FROM incoming i
    LEFT JOIN orders c ON c.id = i.id AND c.id >= %(low)s AND c.id < %(high)s
    WHERE c.id IS NULL OR (
        c.imported_at IS NOT NULL
        AND (c.user_id, c.status, c.total_price, c.created_at, c.updated_at)
            IS DISTINCT FROM
            (i.user_id, i.status, i.total_price, i.created_at, i.updated_at))
    ON CONFLICT (id) DO UPDATE SET
        user_id = excluded.user_id, status = excluded.status,
        total_price = excluded.total_price, created_at = excluded.created_at,
        updated_at = excluded.updated_at, imported_at = excluded.imported_at
    WHERE t.imported_at IS NOT NULL
    RETURNING xmax = 0 AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""

# The snapshot (name, description, category) comes from the product as imported
# (name shortened, category mapped): the Django app showed the product's
# current row, so that is what the customer last saw.
_ITEMS: LiteralString = """
WITH incoming AS (
    SELECT s.id, s.order_id, s.product_id, p.name AS product_name,
           p.description AS product_description, p.category AS product_category,
           s.price_at_purchase, s.quantity
    FROM src_items s JOIN products p ON p.id = s.product_id
    WHERE s.refused IS NULL AND s.id >= %(low)s AND s.id < %(high)s
), upserted AS (
    INSERT INTO order_items AS t (id, order_id, product_id, product_name, product_description,
                                  product_category, price_at_purchase, quantity)
    SELECT i.* FROM incoming i
    LEFT JOIN order_items c ON c.id = i.id AND c.id >= %(low)s AND c.id < %(high)s
    WHERE c.id IS NULL OR (
        c.order_id = i.order_id
        AND (c.product_id, c.product_name, c.product_description, c.product_category,
             c.price_at_purchase, c.quantity)
            IS DISTINCT FROM
            (i.product_id, i.product_name, i.product_description, i.product_category,
             i.price_at_purchase, i.quantity))
    ON CONFLICT (id) DO UPDATE SET
        product_id = excluded.product_id, product_name = excluded.product_name,
        product_description = excluded.product_description,
        product_category = excluded.product_category,
        price_at_purchase = excluded.price_at_purchase, quantity = excluded.quantity
    WHERE t.order_id = excluded.order_id
    RETURNING xmax = 0 AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""

# Fresh statistics once a table is written, for the statements that join it
# next (items join products; the history joins orders). ANALYZE inside the
# transaction counts the transaction's own new rows.
ANALYZE_AFTER: dict[str, LiteralString] = {
    "users": "ANALYZE users",
    "products": "ANALYZE products",
    "orders": "ANALYZE orders",
    "order items": "ANALYZE order_items",
}

UPSERTS: tuple[tuple[str, LiteralString], ...] = (
    ("users", _USERS),
    ("products", _PRODUCTS),
    ("orders", _ORDERS),
    ("order items", _ITEMS),
)

# Items of imported orders that the source no longer has (the Django app's
# cascade deleted them with their product since the last pass).
REMOVE_WIPED_ITEMS: LiteralString = """
DELETE FROM order_items t USING src_orders o
WHERE t.order_id = o.id AND o.refused IS NULL
  AND NOT EXISTS (SELECT 1 FROM src_items s WHERE s.id = t.id AND s.refused IS NULL)
"""

# One history entry per imported order: from nothing to its status, no actor,
# at its updated_at; kept in step with the order on later passes.
UPDATE_HISTORY: LiteralString = """
UPDATE order_status_changes h SET to_status = s.status, at = s.updated_at
FROM src_orders s
WHERE h.order_id = s.id AND s.refused IS NULL AND h.from_status IS NULL AND h.actor_id IS NULL
  AND (h.to_status, h.at) IS DISTINCT FROM (s.status, s.updated_at)
"""
INSERT_HISTORY: LiteralString = """
INSERT INTO order_status_changes (order_id, from_status, to_status, actor_id, at)
SELECT s.id, NULL, s.status, NULL, s.updated_at FROM src_orders s
WHERE s.refused IS NULL
  AND NOT EXISTS (SELECT 1 FROM order_status_changes h WHERE h.order_id = s.id)
"""

# Products the Django app deleted since the last pass: the shop never deletes a
# product (past orders point at it), so they stop being sold.
ARCHIVE_VANISHED: LiteralString = """
UPDATE products p SET archived = true, updated_at = now()
WHERE p.imported_at IS NOT NULL AND NOT p.archived
  AND NOT EXISTS (SELECT 1 FROM src_products s WHERE s.id = p.id)
"""

# Run before the upsert: imported users whose snapshot (``user_<id>``) must go.
_CHANGED_USERS: LiteralString = """
SELECT s.id FROM src_users s JOIN users t USING (id) LEFT JOIN src_usernames n USING (id)
WHERE s.refused IS NULL AND t.imported_at IS NOT NULL
  AND (t.email, t.username, t.is_staff, t.is_active)
      IS DISTINCT FROM
      (lower(s.email), coalesce(n.username, s.username), s.is_staff OR s.is_superuser,
       s.is_active)
"""

_CHANGED_STOCK: LiteralString = """
SELECT s.id FROM src_products s JOIN products t USING (id)
WHERE s.refused IS NULL AND t.imported_at IS NOT NULL AND t.stock IS DISTINCT FROM s.stock
"""

# Identity sequences past the largest id (never backwards: setval is not
# transactional, and new shop rows may already be above the imported ones).
SEQUENCES: tuple[LiteralString, ...] = (
    "SELECT setval(pg_get_serial_sequence('users', 'id'), greatest("
    "(SELECT coalesce(max(id), 0) FROM users), "
    "coalesce(pg_sequence_last_value(pg_get_serial_sequence('users', 'id')::regclass), 0), 1))",
    "SELECT setval(pg_get_serial_sequence('products', 'id'), greatest("
    "(SELECT coalesce(max(id), 0) FROM products), "
    "coalesce(pg_sequence_last_value(pg_get_serial_sequence('products', 'id')::regclass), 0), 1))",
    "SELECT setval(pg_get_serial_sequence('orders', 'id'), greatest("
    "(SELECT coalesce(max(id), 0) FROM orders), "
    "coalesce(pg_sequence_last_value(pg_get_serial_sequence('orders', 'id')::regclass), 0), 1))",
    "SELECT setval(pg_get_serial_sequence('order_items', 'id'), greatest("
    "(SELECT coalesce(max(id), 0) FROM order_items), "
    "coalesce(pg_sequence_last_value(pg_get_serial_sequence('order_items', 'id')::regclass), 0), 1))",
)


ID_RANGE: dict[str, LiteralString] = {
    "users": "SELECT min(id), max(id) FROM src_users",
    "products": "SELECT min(id), max(id) FROM src_products",
    "orders": "SELECT min(id), max(id) FROM src_orders",
    "order items": "SELECT min(id), max(id) FROM src_items",
}


async def id_batches(
    conn: psycopg.AsyncConnection[Any], table: str, batches: int
) -> list[tuple[int, int]]:
    """``[low, high)`` id ranges that split ``table``'s staging rows into about ``batches``
    parts: the upsert runs per range, in the same transaction, so progress can be shown."""
    row = await (await conn.execute(ID_RANGE[table])).fetchone()
    if row is None or row[0] is None:
        return []
    low, high = int(row[0]), int(row[1]) + 1
    step = max((high - low + batches - 1) // batches, 1)
    return [(start, min(start + step, high)) for start in range(low, high, step)]


async def count_upsert(
    conn: psycopg.AsyncConnection[Any], query: LiteralString, params: dict[str, Any]
) -> tuple[int, int]:
    """``(inserted, updated)`` of one id range."""
    row = await (await conn.execute(query, params)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def run_statement(conn: psycopg.AsyncConnection[Any], query: LiteralString) -> int:
    """Rows affected."""
    cursor = await conn.execute(query)
    return cursor.rowcount


async def changed_user_ids(conn: psycopg.AsyncConnection[Any]) -> list[int]:
    return [int(row[0]) for row in await (await conn.execute(_CHANGED_USERS)).fetchall()]


async def changed_stock_ids(conn: psycopg.AsyncConnection[Any]) -> list[int]:
    """Products imported before whose stock this run changes (their cached figures go)."""
    return [int(row[0]) for row in await (await conn.execute(_CHANGED_STOCK)).fetchall()]
