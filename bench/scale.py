"""The million-row data set (`--scale`), built inside PostgreSQL with set-based SQL.

Not through the API: a million checkouts would take hours. Every row is made
by ``INSERT ... SELECT`` over ``generate_series`` in one psql session:

* 100,000 users (the first one is the "big customer", with 2,000 orders);
* 1,000,000 products: names of three words from a word list (so ``search``
  finds some and misses others), every category, prices spread from 1.00 to
  999.99, about 5 % out of stock and 1 % archived, created over a year;
* 1,000,000 orders of 1 to 5 items (each item a copy of its product's name,
  description, category and price, as checkout stores them) with their
  history: one ``pending`` row, plus the move to the order's current status.

Picks are deterministic functions of the row number (no ``random()`` per
row except where noted), so two builds are the same data set. The secondary
indexes of the big tables are dropped first and rebuilt at the end (building
an index once is much faster than maintaining it for every row, the GIN
trigram index above all), foreign-key triggers are off during the load
(``session_replication_role = replica``: every reference is made valid by
construction), and ``VACUUM ANALYZE`` gives the planner statistics and the
visibility map (index-only scans).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench.servers import HOST, PG_BIN

__all__ = ["BIG_CUSTOMER_ORDERS", "build", "is_built"]

PRODUCTS = 1_000_000
USERS = 100_000
ORDERS = 1_000_000
BIG_CUSTOMER_ORDERS = 2_000

WORDS = [
    "blue",
    "red",
    "green",
    "black",
    "white",
    "silver",
    "golden",
    "tiny",
    "large",
    "smart",
    "wireless",
    "classic",
    "modern",
    "vintage",
    "portable",
    "compact",
    "deluxe",
    "premium",
    "organic",
    "wooden",
    "steel",
    "leather",
    "cotton",
    "woolen",
    "phone",
    "laptop",
    "tablet",
    "camera",
    "speaker",
    "headphones",
    "charger",
    "cable",
    "keyboard",
    "mouse",
    "monitor",
    "shirt",
    "jacket",
    "dress",
    "shoes",
    "boots",
    "scarf",
    "hat",
    "gloves",
    "socks",
    "sweater",
    "novel",
    "cookbook",
    "atlas",
    "poem",
    "diary",
    "comic",
    "guide",
    "manual",
    "lamp",
    "chair",
    "table",
    "sofa",
    "pillow",
    "blanket",
    "mug",
    "kettle",
    "pan",
    "knife",
    "plate",
    "ball",
    "racket",
    "bike",
    "helmet",
    "tent",
    "rope",
    "bottle",
    "puzzle",
    "doll",
    "robot",
    "train",
    "kite",
    "blocks",
    "drone",
    "garden",
    "kitchen",
    "travel",
    "office",
    "winter",
    "summer",
    "sport",
    "kids",
]

_TABLES = ("products", "orders", "order_items", "order_status_changes")


def script(products: int = PRODUCTS, users: int = USERS, orders: int = ORDERS) -> str:
    """The build, as one psql script (sizes overridable for a smoke test).

    Only integers and constants of this module are formatted in: no input.
    """
    return f"""
\\set ON_ERROR_STOP on
SET synchronous_commit = off;
SET maintenance_work_mem = '256MB';
SET session_replication_role = replica;

-- The secondary indexes, kept to be rebuilt after the load.
CREATE TABLE IF NOT EXISTS bench_saved_indexes (name text PRIMARY KEY, definition text);
INSERT INTO bench_saved_indexes
SELECT indexname, indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename IN {_TABLES!r}
  AND indexname NOT LIKE 'pk\\_%' AND indexname NOT LIKE 'uq\\_%'
ON CONFLICT DO NOTHING;
DO $$
DECLARE i record;
BEGIN
  FOR i IN SELECT name FROM bench_saved_indexes LOOP
    EXECUTE format('DROP INDEX IF EXISTS %I', i.name);
  END LOOP;
END $$;

INSERT INTO users (email, username, password_hash)
SELECT 'scale' || n || '@bench.example.com', 'scale' || n,
       (SELECT password_hash FROM users WHERE is_staff LIMIT 1)
FROM generate_series(1, {users}) AS n;

INSERT INTO products (name, description, price, stock, category, archived, created_at, updated_at)
SELECT initcap(w[1 + (n * 7) % cardinality(w)]) || ' ' || w[1 + (n / 7 * 13) % cardinality(w)]
         || ' ' || w[1 + (n / 97 * 31) % cardinality(w)],
       'Product ' || n || ' of the scale catalogue, with a sentence of text.',
       1 + ((n::bigint * 2654435761) % 99900) / 100.0,
       CASE WHEN n % 20 = 7 THEN 0 ELSE 1 + (n * 31) % 500 END,
       (ARRAY['electronics','clothing','books','home','sports','toys'])[1 + n % 6],
       n % 100 = 3,
       now() - make_interval(secs => n * 30),
       now() - make_interval(secs => n * 30)
FROM generate_series(1, {products}) AS n,
     (SELECT ARRAY{list(WORDS)!r}::text[] AS w) AS words;

CREATE TEMP TABLE bounds AS
SELECT (SELECT min(id) FROM products) AS pmin,
       (SELECT min(id) FROM users WHERE username LIKE 'scale%') AS umin,
       (SELECT coalesce(max(id), 0) FROM orders) AS omin;

-- Order n: 1 + n % 5 items; item k is product pmin + (n * 7919 + k * 104729) % PRODUCTS
-- (distinct for k = 1..5), quantity 1 + (n + k) % 3. The first orders belong to
-- the big customer; the others to users spread by a multiplicative hash.
INSERT INTO orders (id, user_id, status, total_price, created_at, updated_at)
SELECT b.omin + n,
       CASE WHEN n <= {BIG_CUSTOMER_ORDERS} THEN b.umin
            ELSE b.umin + 1 + (n::bigint * 40503) % ({users} - 1) END,
       (ARRAY['pending','processing','shipped','delivered','delivered','cancelled'])[1 + (n * 7) % 6],
       (SELECT sum(p.price * (1 + (n + k) % 3))
          FROM generate_series(1, 1 + n % 5) AS k
          JOIN products p ON p.id = b.pmin + (n::bigint * 7919 + k * 104729) % {products}),
       now() - make_interval(secs => n * 25),
       now() - make_interval(secs => n * 25)
FROM generate_series(1, {orders}) AS n, bounds b;

INSERT INTO order_items (order_id, product_id, product_name, product_description,
                         product_category, price_at_purchase, quantity)
SELECT b.omin + n, p.id, p.name, p.description, p.category, p.price, 1 + (n + k) % 3
FROM generate_series(1, {orders}) AS n
CROSS JOIN bounds b
CROSS JOIN LATERAL generate_series(1, 1 + n % 5) AS k
JOIN products p ON p.id = b.pmin + (n::bigint * 7919 + k * 104729) % {products};

INSERT INTO order_status_changes (order_id, from_status, to_status, actor_id, at)
SELECT o.id, NULL, 'pending', o.user_id, o.created_at
FROM orders o, bounds b WHERE o.id > b.omin;
INSERT INTO order_status_changes (order_id, from_status, to_status, actor_id, at)
SELECT o.id, 'pending', o.status, o.user_id, o.created_at + interval '1 hour'
FROM orders o, bounds b WHERE o.id > b.omin AND o.status <> 'pending';

SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders));

SET session_replication_role = origin;
DO $$
DECLARE i record;
BEGIN
  FOR i IN SELECT definition FROM bench_saved_indexes LOOP
    EXECUTE i.definition;
  END LOOP;
END $$;
DROP TABLE bench_saved_indexes;
CREATE TABLE bench_scale_built (built_at timestamptz DEFAULT now());
INSERT INTO bench_scale_built DEFAULT VALUES;
"""  # noqa: S608


def _psql(database_url: str, *args: str, stdin: str | None = None) -> str:
    assert PG_BIN is not None
    assert f"@{HOST}:" in database_url, "bench databases are on loopback only"
    out = subprocess.run(  # noqa: S603
        [str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", database_url, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"bench: psql failed ({out.returncode}):\n{out.stderr}")
    return out.stdout


def is_built(database_url: str) -> bool:
    found = _psql(database_url, "-c", "SELECT to_regclass('bench_scale_built') IS NOT NULL")
    return found.strip() == "t"


def build(database_url: str, log_dir: Path, **sizes: int) -> float:
    """Build the data set; returns the seconds it took."""
    started = time.monotonic()
    sql = script(**sizes)
    (log_dir / "scale.sql").write_text(sql)
    _psql(database_url, stdin=sql)
    _psql(
        database_url,
        "-c",
        "VACUUM (ANALYZE) products, orders, order_items, order_status_changes, users",
    )
    return time.monotonic() - started


def big_customer(database_url: str) -> int:
    """Id of the customer with `BIG_CUSTOMER_ORDERS` orders."""
    return int(
        _psql(database_url, "-c", "SELECT min(id) FROM users WHERE username LIKE 'scale%'").strip()
    )


def sample(database_url: str, sql: str) -> list[int]:
    return [int(x) for x in _psql(database_url, "-c", sql).split()]
