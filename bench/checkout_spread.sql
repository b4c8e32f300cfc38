-- D4: the database ceiling of S4. The statements src/shop/orders/repositories.py
-- (StockRepository.claim, OrderRepository.insert_checkout) and shop.jobs.defer
-- run for a two-item order, in one transaction, straight against PostgreSQL.
-- Run with -M prepared (asyncpg prepares its statements too) and
-- -D pmin=.. -D pmax=.. -D umin=.. -D umax=.. (seeded product and customer ids).
\set a random(:pmin, :pmax)
\set b :pmin + (:a - :pmin + random(1, :pmax - :pmin)) % (:pmax - :pmin + 1)
\set uid random(:umin, :umax)
BEGIN;
-- the claim: rows locked in id order, conditional decrement, the products returned
-- (wrapped in one aggregate row so \gset can hand the columns to the insert,
-- as the app hands them over from Python)
WITH wanted AS (
    SELECT * FROM unnest(ARRAY[CAST(:a AS bigint), CAST(:b AS bigint)], ARRAY[1, 1])
        AS w(product_id, quantity)
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
    RETURNING p.id, p.name, p.description, p.category, p.price, p.stock, p.created_at, p.updated_at
)
SELECT array_agg(id ORDER BY id) AS ids, array_agg(name ORDER BY id) AS names,
       array_agg(description ORDER BY id) AS descriptions, array_agg(category ORDER BY id) AS categories,
       array_agg(price ORDER BY id) AS prices, sum(price) AS total
FROM claimed
\gset
WITH o AS (
    INSERT INTO orders (user_id, status, total_price)
    VALUES (CAST(:uid AS bigint), 'pending', CAST(:total AS numeric))
    RETURNING id, created_at, updated_at
), i AS (
    INSERT INTO order_items (
        order_id, product_id, product_name, product_description, product_category,
        price_at_purchase, quantity
    )
    SELECT o.id, x.product_id, x.name, x.description, x.category, x.price, x.quantity
    FROM o, unnest(
        CAST(:ids AS bigint[]), CAST(:names AS text[]), CAST(:descriptions AS text[]),
        CAST(:categories AS text[]), CAST(:prices AS numeric[]), CAST('{1,1}' AS integer[])
    ) WITH ORDINALITY AS x(product_id, name, description, category, price, quantity, n)
    ORDER BY x.n
    RETURNING id, product_id
), h AS (
    INSERT INTO order_status_changes (order_id, from_status, to_status, actor_id)
    SELECT o.id, NULL, 'pending', CAST(:uid AS bigint) FROM o
    RETURNING at
)
SELECT o.id, o.created_at, o.updated_at, h.at AS history_at,
       array_agg(i.id) AS item_ids, array_agg(i.product_id) AS product_ids
FROM o, h, i
GROUP BY o.id, o.created_at, o.updated_at, h.at
\gset order_
-- (pgbench would read ':generate_invoice' inside the literal as a variable, hence the concat)
SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(
    'invoices', 'orders:' || 'generate_invoice', 0, NULL, NULL,
    jsonb_build_object('order_id', CAST(:order_id AS bigint)), NULL
)::procrastinate_job_to_defer_v1])) AS id;
COMMIT;
