-- D4: the database ceiling of S4. The statement the app runs for a two-item order
-- (src/shop/orders/repositories.py _PLACE_ORDER: the stock claim, the order, its items,
-- its history row and its invoice job through procrastinate_defer_jobs_v1), in one
-- transaction, straight against PostgreSQL. Keep it in sync with _PLACE_ORDER.
-- Run with -M prepared (asyncpg prepares its statements too) and
-- -D pmin=.. -D pmax=.. -D umin=.. -D umax=.. (seeded product and customer ids).
\set a random(:pmin, :pmax)
\set b :pmin + (:a - :pmin + random(1, :pmax - :pmin)) % (:pmax - :pmin + 1)
\set uid random(:umin, :umax)
-- (the task name is concatenated: pgbench would read the colon and what follows it in
-- 'orders' || ... as a variable; comments inside a statement are scanned too)
BEGIN;
WITH wanted AS (
    SELECT * FROM unnest(ARRAY[CAST(:a AS bigint), CAST(:b AS bigint)], ARRAY[1, 1])
        WITH ORDINALITY AS w(product_id, quantity, n)
), locked AS MATERIALIZED (
    SELECT p.id FROM products p
    WHERE p.id = ANY(ARRAY[CAST(:a AS bigint), CAST(:b AS bigint)])
    ORDER BY p.id
    FOR NO KEY UPDATE
), claimed AS (
    UPDATE products p
    SET stock = p.stock - w.quantity
    FROM wanted w, locked l
    WHERE p.id = w.product_id AND l.id = p.id AND p.stock >= w.quantity AND NOT p.archived
    RETURNING p.id, p.name, p.description, p.category, p.price, p.stock, p.created_at,
              p.updated_at, w.quantity, w.n
), basket AS (
    SELECT count(*) AS lines, sum(c.price * c.quantity) AS total FROM claimed c
), o AS (
    INSERT INTO orders (user_id, status, total_price)
    SELECT CAST(:uid AS bigint), 'pending', b.total FROM basket b
    WHERE b.lines = cardinality(ARRAY[CAST(:a AS bigint), CAST(:b AS bigint)])
      AND b.total BETWEEN CAST('1.00' AS numeric) AND CAST('9999999999.99' AS numeric)
    RETURNING id, created_at, updated_at
), i AS (
    INSERT INTO order_items (
        order_id, product_id, product_name, product_description, product_category,
        price_at_purchase, quantity
    )
    SELECT o.id, c.id, c.name, c.description, c.category, c.price, c.quantity
    FROM o, claimed c
    ORDER BY c.n
    RETURNING id, product_id
), h AS (
    INSERT INTO order_status_changes (order_id, from_status, to_status, actor_id)
    SELECT o.id, NULL, 'pending', CAST(:uid AS bigint) FROM o
    RETURNING at
), j AS MATERIALIZED (
    SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(
        'invoices', 'orders:' || 'generate_invoice', 0, NULL, NULL,
        CAST('{}' AS jsonb) || jsonb_build_object('order_id', o.id), NULL
    )::procrastinate_job_to_defer_v1]) AS job_ids
    FROM o
)
SELECT c.id, c.name, c.description, c.category, c.price, c.stock, c.created_at,
       c.updated_at, o.id AS order_id, o.created_at AS order_created_at,
       o.updated_at AS order_updated_at, h.at AS history_at, i.id AS item_id, j.job_ids
FROM claimed c
LEFT JOIN o ON true
LEFT JOIN h ON true
LEFT JOIN j ON true
LEFT JOIN i ON i.product_id = c.id
ORDER BY c.n;
COMMIT;
