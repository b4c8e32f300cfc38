"""The rules for odd source data, as set-based SQL over the staging tables.

Every rule is documented in docs/migrating-from-django.md under the same name.
A *refusal* marks the staging row (``refused`` = the rule) so the upserts skip
it, and it cascades: a refused user's orders, a refused order's items. A
*warning* only reports: the row is imported as the rule says (the rewriting
itself happens in the upserts, `shop.importer.apply`). Rules run in this
order, users first, because later refusals depend on earlier ones.

E-mail twins are different: two source users whose e-mails differ only by
case cannot both exist in the shop (its e-mail index ignores case). They are
found first (`find_email_twins`), and unless the operator chose a resolution
the import stops before writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg

from shop.importer.report import Problem

__all__ = [
    "CATEGORIES",
    "RULES",
    "Rule",
    "apply_rules",
    "find_email_twins",
    "keep_latest_twin",
]

CATEGORIES = ("electronics", "clothing", "books", "home", "sports", "toys")
NAME_LIMIT = 200
PLACEHOLDER_PRICE = "0.01"
VERIFIED_HASHES = ("pbkdf2_sha256", "pbkdf2_sha1", "argon2", "scrypt")


@dataclass(frozen=True, slots=True)
class Rule:
    table: str
    name: str
    refused: bool
    query: LiteralString
    """Returns ``(id, detail)`` per row; a refusal is an UPDATE that marks ``refused``."""


RULES: tuple[Rule, ...] = (
    # --- users ------------------------------------------------------------------------------
    Rule(
        "users",
        "id taken by a user made in the shop",
        True,
        "UPDATE src_users s SET refused = 'id' FROM users u "
        "WHERE u.id = s.id AND u.imported_at IS NULL AND s.refused IS NULL "
        "RETURNING s.id, 'user id ' || s.id || ' belongs to ' || u.email || ', who registered in the shop'",
    ),
    Rule(
        "users",
        "e-mail taken by another shop user",
        True,
        "UPDATE src_users s SET refused = 'email' FROM users u "
        "WHERE lower(u.email) = lower(s.email) AND u.id <> s.id AND s.refused IS NULL "
        "AND (u.imported_at IS NULL OR NOT EXISTS (SELECT 1 FROM src_users o WHERE o.id = u.id)) "
        "RETURNING s.id, s.email || ' is the e-mail of shop user ' || u.id",
    ),
    Rule(
        "users",
        "username differs only by case from another user's: renamed",
        False,
        "SELECT n.id, s.username || ' is imported as ' || n.username "
        "FROM src_usernames n JOIN src_users s USING (id) WHERE s.refused IS NULL ORDER BY n.id",
    ),
    Rule(
        "users",
        "unusable password: imported, cannot log in with a password",
        False,
        "SELECT id, 'the Django app marked this password unusable' FROM src_users "
        "WHERE password LIKE '!%%' AND refused IS NULL ORDER BY id",
    ),
    Rule(
        "users",
        "password hash the shop cannot verify: imported, cannot log in with a password",
        False,
        "SELECT id, 'hash format ' || split_part(password, '$', 1) FROM src_users "
        "WHERE password NOT LIKE '!%%' AND refused IS NULL "
        "AND split_part(password, '$', 1) <> ALL (%(hashes)s) ORDER BY id",
    ),
    # --- products ---------------------------------------------------------------------------
    Rule(
        "products",
        "id taken by a product made in the shop",
        True,
        "UPDATE src_products s SET refused = 'id' FROM products p "
        "WHERE p.id = s.id AND p.imported_at IS NULL AND s.refused IS NULL "
        "RETURNING s.id, 'product id ' || s.id || ' belongs to ' || p.name || ', made in the shop'",
    ),
    Rule(
        "products",
        "name longer than 200 characters: shortened",
        False,
        "SELECT id, length(name) || ' characters, kept up to the 199th and an ellipsis' "
        "FROM src_products WHERE length(name) > %(name_limit)s AND refused IS NULL ORDER BY id",
    ),
    Rule(
        "products",
        "price not above zero: archived with a placeholder price",
        False,
        "SELECT id, 'price ' || price || '; imported archived (not for sale) at ' "
        "|| %(placeholder)s::text FROM src_products WHERE price <= 0 AND refused IS NULL ORDER BY id",
    ),
    Rule(
        "products",
        "unknown category: archived in the fallback category",
        False,
        "SELECT id, 'category ' || quote_literal(category) "
        "|| '; imported archived (not for sale) as ' || %(fallback)s::text FROM src_products "
        "WHERE category <> ALL (%(categories)s) AND refused IS NULL ORDER BY id",
    ),
    # --- orders -----------------------------------------------------------------------------
    Rule(
        "orders",
        "owner not imported",
        True,
        "UPDATE src_orders o SET refused = 'owner' WHERE o.refused IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM src_users u WHERE u.id = o.user_id AND u.refused IS NULL) "
        "RETURNING o.id, 'user ' || o.user_id || ' was refused'",
    ),
    Rule(
        "orders",
        "unknown status",
        True,
        "UPDATE src_orders SET refused = 'status' "
        "WHERE status <> ALL (%(statuses)s) AND refused IS NULL "
        "RETURNING id, 'status ' || quote_literal(status)",
    ),
    Rule(
        "orders",
        "negative total",
        True,
        "UPDATE src_orders SET refused = 'total' WHERE total_price < 0 AND refused IS NULL "
        "RETURNING id, 'total ' || total_price",
    ),
    Rule(
        "orders",
        "id taken by an order made in the shop",
        True,
        "UPDATE src_orders s SET refused = 'id' FROM orders o "
        "WHERE o.id = s.id AND o.imported_at IS NULL AND s.refused IS NULL "
        "RETURNING s.id, 'order id ' || s.id || ' belongs to an order placed in the shop'",
    ),
    Rule(
        "orders",
        "items do not add up to the total (deleted products): total kept",
        False,
        "SELECT o.id, coalesce(i.count, 0) || ' item(s) adding up to ' || coalesce(i.sum, 0) "
        "|| '; stored total ' || o.total_price || ' kept' "
        "FROM src_orders o LEFT JOIN (SELECT order_id, count(*) AS count, "
        "sum(quantity * price_at_purchase) AS sum FROM src_items GROUP BY order_id) i "
        "ON i.order_id = o.id WHERE o.refused IS NULL "
        "AND coalesce(i.sum, 0) <> o.total_price ORDER BY o.id",
    ),
    # --- items ------------------------------------------------------------------------------
    Rule(
        "order items",
        "order not imported",
        True,
        "UPDATE src_items i SET refused = 'order' FROM src_orders o "
        "WHERE o.id = i.order_id AND o.refused IS NOT NULL AND i.refused IS NULL "
        "RETURNING i.id, 'order ' || i.order_id || ' was refused'",
    ),
    Rule(
        "order items",
        "quantity not above zero",
        True,
        "UPDATE src_items SET refused = 'quantity' WHERE quantity <= 0 AND refused IS NULL "
        "RETURNING id, 'order ' || order_id || ', quantity ' || quantity",
    ),
    Rule(
        "order items",
        "price at purchase not above zero",
        True,
        "UPDATE src_items SET refused = 'price' WHERE price_at_purchase <= 0 AND refused IS NULL "
        "RETURNING id, 'order ' || order_id || ', price at purchase ' || price_at_purchase",
    ),
    Rule(
        "order items",
        "product not imported",
        True,
        "UPDATE src_items i SET refused = 'product' WHERE i.refused IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM src_products p WHERE p.id = i.product_id AND p.refused IS NULL) "
        "RETURNING i.id, 'order ' || i.order_id || ', product ' || i.product_id || ' was refused'",
    ),
    Rule(
        "order items",
        "id taken by an item of a shop order",
        True,
        "UPDATE src_items s SET refused = 'id' FROM order_items t "
        "WHERE t.id = s.id AND t.order_id <> s.order_id AND s.refused IS NULL "
        "RETURNING s.id, 'item id ' || s.id || ' belongs to shop order ' || t.order_id",
    ),
)

_USERNAMES = """
CREATE TEMP TABLE src_usernames ON COMMIT DROP AS
SELECT id, left(username, 149 - length(id::text)) || '-' || id AS username
FROM (
    SELECT s.id, s.username,
           row_number() OVER (PARTITION BY lower(s.username) ORDER BY s.id) AS rank,
           EXISTS (SELECT 1 FROM users u WHERE lower(u.username) = lower(s.username)
                   AND u.id <> s.id AND u.imported_at IS NULL) AS taken_in_shop
    FROM src_users s
) ranked
WHERE rank > 1 OR taken_in_shop
"""


async def apply_rules(
    conn: psycopg.AsyncConnection[Any], *, fallback_category: str
) -> list[Problem]:
    """Run every rule in order; return the problems found."""
    await conn.execute(_USERNAMES)
    params = {
        "hashes": list(VERIFIED_HASHES),
        "categories": list(CATEGORIES),
        "statuses": ["pending", "processing", "shipped", "delivered", "cancelled"],
        "name_limit": NAME_LIMIT,
        "placeholder": PLACEHOLDER_PRICE,
        "fallback": fallback_category,
    }
    problems: list[Problem] = []
    for rule in RULES:
        cursor = await conn.execute(rule.query, params)
        rows = sorted(await cursor.fetchall())
        problems += [
            Problem(rule.table, int(row_id), rule.name, str(detail), rule.refused)
            for row_id, detail in rows
        ]
    return problems


_TWINS = """
SELECT lower(email), array_agg(id ORDER BY id), array_agg(email ORDER BY id)
FROM src_users GROUP BY lower(email) HAVING count(*) > 1 ORDER BY min(id)
"""


async def find_email_twins(conn: psycopg.AsyncConnection[Any]) -> list[Problem]:
    """Source users whose e-mails differ only by case, one problem per user."""
    problems = []
    for _, ids, emails in await (await conn.execute(_TWINS)).fetchall():
        others = ", ".join(f"{i} <{e}>" for i, e in zip(ids, emails, strict=True))
        problems += [
            Problem("users", int(i), "e-mail differs only by case", f"{e}: users {others}", True)
            for i, e in zip(ids, emails, strict=True)
        ]
    return problems


_KEEP_LATEST = """
UPDATE src_users s SET refused = 'twin' FROM (
    SELECT id,
           row_number() OVER w AS rank,
           first_value(id) OVER w AS kept
    FROM src_users
    WINDOW w AS (PARTITION BY lower(email)
                 ORDER BY coalesce(last_login, date_joined) DESC NULLS LAST, id DESC)
) r
WHERE r.id = s.id AND r.rank > 1
RETURNING s.id, s.email || ': user ' || r.kept || ' was active more recently and keeps the address'
"""


async def keep_latest_twin(conn: psycopg.AsyncConnection[Any]) -> list[Problem]:
    """``--email-twins keep-latest``: refuse every twin but the one active most recently."""
    rows = sorted(await (await conn.execute(_KEEP_LATEST)).fetchall())
    return [
        Problem("users", int(i), "e-mail twin of a more recently active user", str(d), True)
        for i, d in rows
    ]
