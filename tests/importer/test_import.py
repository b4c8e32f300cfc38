"""`shop import django`: every row imported by the documented rules, idempotent, all or nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import asyncpg
import pytest

from tests.importer.conftest import LONG_NAME, T0, run_import, source_execute


async def _rows(url: str, query: str) -> list[dict]:
    conn = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await conn.fetch(query)]
    finally:
        await conn.close()


async def _snapshot(url: str) -> dict[str, list[dict]]:
    """Every row of the tables the import writes, for before/after comparisons."""
    tables = ("users", "products", "orders", "order_items", "order_status_changes")
    return {t: await _rows(url, f"SELECT * FROM {t} ORDER BY id") for t in tables}


async def test_import_brings_users_over_with_their_fields(settings, postgres_url, django_source):
    await run_import(settings, django_source)

    users = {u["id"]: u for u in await _rows(postgres_url, "SELECT * FROM users")}
    assert sorted(users) == [1, 2, 3, 4, 5, 8, 9, 10, 11]
    assert users[1]["is_staff"] is True  # a Django superuser becomes staff
    assert users[2]["email"] == "alice@example.com"  # stored lower-case, as the shop does
    assert (users[2]["phone"], users[2]["address"]) == ("", "")  # Django's nulls
    assert (users[3]["phone"], users[3]["address"]) == ("+33 6 12", "Lyon")
    assert users[4]["is_staff"] is True
    assert users[8]["is_active"] is False
    assert users[3]["date_joined"] == T0 - timedelta(days=3)
    assert users[9]["username"] == "Alice-9"  # "Alice" differs only by case from user 2's "alice"
    assert users[3]["password_hash"].startswith("argon2$argon2id$")  # as Django stored it
    assert all(u["imported_at"] is not None for u in users.values())


async def test_products_that_break_the_shops_rules_are_imported_by_the_documented_rule(
    settings, postgres_url, django_source
):
    report, printed = await run_import(settings, django_source, fallback_category="toys")

    products = {p["id"]: p for p in await _rows(postgres_url, "SELECT * FROM products")}
    assert (products[1]["name"], products[1]["price"], products[1]["archived"]) == (
        "Lamp",
        Decimal("19.99"),
        False,
    )
    assert products[2]["name"] == LONG_NAME[:199] + "…" and len(products[2]["name"]) == 200
    assert products[2]["archived"] is False
    assert (products[3]["price"], products[3]["archived"]) == (Decimal("0.01"), True)
    assert (products[4]["category"], products[4]["archived"]) == ("toys", True)
    assert products[4]["updated_at"] == T0.replace(hour=13)
    warned = {(p.table, p.row_id) for p in report.problems if not p.refused}
    assert {("products", 2), ("products", 3), ("products", 4)} <= warned
    assert "category 'garden'" in printed


async def test_orders_come_with_items_snapshots_and_one_history_entry(
    settings, postgres_url, django_source
):
    await run_import(settings, django_source)

    orders = {o["id"]: o for o in await _rows(postgres_url, "SELECT * FROM orders")}
    assert sorted(orders) == [1, 2, 3, 5]  # 4 has a status the shop does not know
    assert (orders[2]["user_id"], orders[2]["status"], orders[2]["total_price"]) == (
        3,
        "delivered",
        Decimal("29.99"),
    )
    assert orders[3]["total_price"] == Decimal("50.00")  # items wiped, total kept
    items = await _rows(postgres_url, "SELECT * FROM order_items ORDER BY id")
    assert [(i["id"], i["order_id"], i["quantity"], i["price_at_purchase"]) for i in items] == [
        (1, 1, 2, Decimal("19.99")),
        (2, 2, 1, Decimal("19.99")),
        (3, 2, 2, Decimal("5.00")),
        (5, 5, 1, Decimal("12.50")),
    ]
    assert (items[2]["product_name"], items[2]["product_category"]) == (
        LONG_NAME[:199] + "…",
        "home",
    )
    assert items[0]["product_description"] == "A desk lamp"
    history = await _rows(postgres_url, "SELECT * FROM order_status_changes ORDER BY order_id")
    assert [(h["order_id"], h["from_status"], h["to_status"], h["actor_id"]) for h in history] == [
        (1, None, "pending", None),
        (2, None, "delivered", None),
        (3, None, "shipped", None),
        (5, None, "cancelled", None),
    ]
    assert history[1]["at"] == orders[2]["updated_at"]


async def test_odd_orders_are_reported_and_the_run_counts_as_refused(settings, django_source):
    report, printed = await run_import(settings, django_source)

    refused = {(p.table, p.row_id) for p in report.problems if p.refused}
    assert refused == {("orders", 4), ("order items", 4)}
    assert report.ok is False  # the CLI exits 1
    wiped = [p for p in report.problems if p.table == "orders" and p.row_id == 3]
    assert wiped and "stored total 50.00 kept" in wiped[0].detail
    assert "status 'lost-in-space'" in printed
    assert report.tables["orders"].inserted == 4 and report.tables["orders"].refused == 1


async def test_new_rows_get_ids_past_the_imported_ones(client, settings, django_source):
    await run_import(settings, django_source)

    response = await client.post(
        "/api/auth/register/",
        json={
            "username": "newcomer",
            "email": "newcomer@example.com",
            "password": "Fresh-Shop-pass-1",
            "password_confirm": "Fresh-Shop-pass-1",
        },
    )

    assert response.status_code == 201, response.text
    assert response.json()["user"]["id"] == 12


async def test_a_second_import_changes_nothing(settings, postgres_url, django_source):
    await run_import(settings, django_source)
    before = await _snapshot(postgres_url)

    report, _ = await run_import(settings, django_source)

    assert await _snapshot(postgres_url) == before
    for counts in report.tables.values():
        assert (counts.inserted, counts.updated) == (0, 0)


async def test_an_import_after_source_changes_applies_them(settings, postgres_url, django_source):
    await run_import(settings, django_source)
    await source_execute(django_source, "UPDATE users_user SET phone = '555' WHERE id = 3")
    await source_execute(
        django_source, "UPDATE orders_order SET status = 'delivered', updated_at = $1 WHERE id = 1",
        T0.replace(month=5),
    )  # fmt: skip
    await source_execute(django_source, "UPDATE products_product SET price = 24.50 WHERE id = 1")
    # The Django app deletes product 2; its cascade takes order 2's second item with it.
    await source_execute(django_source, "DELETE FROM orders_orderitem WHERE product_id = 2")
    await source_execute(django_source, "DELETE FROM products_product WHERE id = 2")
    await source_execute(
        django_source, "INSERT INTO orders_order VALUES (8, 'pending', $1, $1, 10, 19.99)", T0
    )
    await source_execute(django_source, "INSERT INTO orders_orderitem VALUES (8, 1, 19.99, 8, 1)")

    report, printed = await run_import(settings, django_source)

    assert (await _rows(postgres_url, "SELECT phone FROM users WHERE id = 3"))[0]["phone"] == "555"
    order = (await _rows(postgres_url, "SELECT status, updated_at FROM orders WHERE id = 1"))[0]
    assert order["status"] == "delivered"
    history = await _rows(postgres_url, "SELECT * FROM order_status_changes WHERE order_id = 1")
    assert [(h["to_status"], h["at"]) for h in history] == [("delivered", order["updated_at"])]
    product = (await _rows(postgres_url, "SELECT price FROM products WHERE id = 1"))[0]
    assert product["price"] == Decimal("24.50")
    assert (await _rows(postgres_url, "SELECT archived FROM products WHERE id = 2"))[0] == {
        "archived": True
    }
    items = await _rows(postgres_url, "SELECT id FROM order_items WHERE order_id = 2")
    assert items == [{"id": 2}]
    assert await _rows(postgres_url, "SELECT id FROM order_items WHERE order_id = 8") == [{"id": 8}]
    assert report.tables["users"].updated == 1
    assert report.tables["orders"].inserted == 1 and report.tables["orders"].updated == 1
    assert "imported products archived (deleted in the source): 1" in printed


async def test_a_password_rehashed_by_the_shop_survives_a_later_pass(
    settings, postgres_url, django_source
):
    await run_import(settings, django_source)
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("UPDATE users SET password_hash = '$argon2id$upgraded' WHERE id = 2")
    finally:
        await conn.close()

    await run_import(settings, django_source)

    row = (await _rows(postgres_url, "SELECT password_hash FROM users WHERE id = 2"))[0]
    assert row["password_hash"] == "$argon2id$upgraded"


async def test_a_failing_import_leaves_the_shop_as_it_was(settings, postgres_url, django_source):
    conn = await asyncpg.connect(postgres_url)
    try:
        # The database refuses the last table the import writes: everything before must go too.
        await conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk full (simulated)'; END $$; "
            "CREATE TRIGGER refuse BEFORE INSERT ON order_status_changes "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
        with pytest.raises(Exception, match="disk full"):
            await run_import(settings, django_source)
    finally:
        await conn.execute("DROP TRIGGER refuse ON order_status_changes; DROP FUNCTION refuse()")
        await conn.close()

    snapshot = await _snapshot(postgres_url)
    assert all(rows == [] for rows in snapshot.values())


async def test_dry_run_reports_everything_and_writes_nothing(settings, postgres_url, django_source):
    report, printed = await run_import(settings, django_source, dry_run=True)

    assert all(rows == [] for rows in (await _snapshot(postgres_url)).values())
    assert report.tables["users"].inserted == 9
    assert report.tables["order items"].inserted == 4
    assert "dry run, nothing written" in printed and "would be imported" in printed
    assert "status 'lost-in-space'" in printed


async def test_email_twins_stop_the_import_before_anything_is_written(
    settings, postgres_url, django_source_with_twins
):
    report, printed = await run_import(settings, django_source_with_twins)

    assert report.blocked is not None and report.ok is False
    assert all(rows == [] for rows in (await _snapshot(postgres_url)).values())
    assert "users 6 <Eve@example.com>, 7 <eve@example.com>" in printed
    assert "--email-twins keep-latest" in printed


async def test_keep_latest_imports_the_most_recently_active_twin(
    settings, postgres_url, django_source_with_twins
):
    report, _ = await run_import(settings, django_source_with_twins, email_twins="keep-latest")

    users = await _rows(postgres_url, "SELECT id, email FROM users WHERE id IN (6, 7)")
    assert users == [{"id": 7, "email": "eve@example.com"}]
    orders = await _rows(postgres_url, "SELECT id FROM orders WHERE id IN (6, 7)")
    assert orders == [{"id": 7}]  # the other twin's order is refused with its owner
    refused = {(p.table, p.row_id) for p in report.problems if p.refused}
    assert {("users", 6), ("orders", 6), ("order items", 6)} <= refused


async def test_a_user_registered_in_the_shop_is_never_overwritten(
    client, settings, postgres_url, django_source
):
    response = await client.post(
        "/api/auth/register/",
        json={
            "username": "shopper",
            "email": "bruno@example.com",
            "password": "Fresh-Shop-pass-1",
            "password_confirm": "Fresh-Shop-pass-1",
        },
    )
    assert response.status_code == 201

    report, _ = await run_import(settings, django_source)

    users = await _rows(postgres_url, "SELECT id, username, imported_at FROM users WHERE id = 1")
    assert users == [{"id": 1, "username": "shopper", "imported_at": None}]
    refused = {(p.table, p.row_id, p.rule) for p in report.problems if p.refused}
    assert ("users", 1, "id taken by a user made in the shop") in refused
    assert ("users", 3, "e-mail taken by another shop user") in refused


async def test_the_source_is_opened_read_only(django_source):
    from shop.importer.staging import open_source

    source = await open_source(django_source)
    try:
        with pytest.raises(Exception, match="read-only transaction"):
            await source.execute("DELETE FROM users_user")
    finally:
        await source.close()
    rows = await _rows(django_source, "SELECT count(*) AS n FROM users_user")
    assert rows == [{"n": 9}]
