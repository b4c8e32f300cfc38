"""Console pages over HTTP (no browser): lists filter like the Django admin did, and every
change goes through the domain services and lands in the audit trail."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shop.console.models import AuditEntry
from shop.orders.models import OrderStatus, WebhookEvent
from shop.orders.webhooks import Outcome
from tests.console.conftest import csrf_of
from tests.orders.jobs_support import make_order
from tests.support.factories import auth_headers, make_product, make_user


async def post(c, page: str, action: str, **data: str):
    token = csrf_of((await c.get(page)).text)
    return await c.post(action, data={**data, "_csrf_token": token})


async def test_orders_search_by_customer_email_or_username(signed_in, db: AsyncSession):
    ada = await make_user(db, email="ada@example.com", username="lovelace")
    bob = await make_user(db, email="bob@example.com", username="builder")
    mine = await make_order(db, ada, with_invoice_job=False)
    other = await make_order(db, bob, with_invoice_job=False)

    by_email = await signed_in.get("/admin/orders/?search=ADA@")
    by_username = await signed_in.get("/admin/orders/?search=lovel")

    for page in (by_email, by_username):
        assert f'id="order-{mine.id}"' in page.text
        assert f'id="order-{other.id}"' not in page.text


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("status=shipped", {"shipped"}),  # one status
        ("status=bogus", {"pending", "shipped"}),  # an unknown status filters nothing, no error
        ("created_from=2000-01-01&created_to=2000-01-02", set()),  # nothing that old
        ("created_from=not-a-date", {"pending", "shipped"}),  # ignored, never a 500
    ],
)
async def test_orders_filters(signed_in, db: AsyncSession, query, shown):
    customer = await make_user(db)
    orders = {
        "pending": await make_order(db, customer, with_invoice_job=False),
        "shipped": await make_order(
            db, customer, status=OrderStatus.SHIPPED, with_invoice_job=False
        ),
    }

    page = await signed_in.get("/admin/orders/?" + query)

    assert page.status_code == 200
    assert {s for s, o in orders.items() if f'id="order-{o.id}"' in page.text} == shown


async def test_htmx_filter_gets_only_the_results_fragment(signed_in, db: AsyncSession):
    await make_product(db, name="Lamp")

    page = await signed_in.get("/admin/products/?search=lamp", headers={"HX-Request": "true"})

    assert page.status_code == 200
    assert "<html" not in page.text and "Lamp" in page.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("search=grace", {"grace"}),  # username contains
        ("search=EXAMPLE.ORG", {"grace"}),  # e-mail contains, any case
        ("staff=true", {"staffer"}),
        ("active=false", {"old"}),
    ],
)
async def test_users_filters(signed_in, db: AsyncSession, query, expected):
    await make_user(db, email="grace@example.org", username="grace")
    await make_user(db, email="old@example.com", username="old", is_active=False)

    page = await signed_in.get("/admin/users/?" + query)

    names = {"grace", "old", "staffer"}
    assert {n for n in names if f">{n}</td>" in page.text} == expected


async def test_archive_and_restore_go_through_the_catalogue(
    signed_in, client, settings, staff, db: AsyncSession
):
    product = await make_product(db, name="Globe")
    page = f"/admin/products/{product.id}"
    api = f"/api/products/{product.id}/"
    headers = auth_headers(settings, staff)
    assert (await client.get(api, headers=headers)).status_code == 200  # cached now

    await post(signed_in, page, f"{page}/archive")
    archived = await client.get(api, headers=headers)
    await post(signed_in, page, f"{page}/restore")
    restored = await client.get(api, headers=headers)

    assert archived.status_code == 404 and restored.status_code == 200
    listed = await signed_in.get("/admin/products/?archived=true")
    assert "Globe" not in listed.text
    actions = (await db.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
    assert actions == ["product.archive", "product.restore"]


async def test_price_change_is_audited_with_before_and_after(signed_in, db: AsyncSession):
    product = await make_product(db, price=Decimal("10.00"), stock=5)

    response = await post(
        signed_in,
        "/admin/products/",
        f"/admin/products/{product.id}/quick",
        price="12.50",
        stock="5",
    )

    assert response.status_code == 303
    entry = await db.scalar(select(AuditEntry))
    assert entry is not None and entry.object_id == str(product.id)
    assert (entry.before, entry.after) == ({"price": "10.00"}, {"price": "12.50"})
    page = await signed_in.get(f"/admin/products/{product.id}")
    assert "price=10.00" in page.text and "price=12.50" in page.text and "staffer" in page.text


async def test_quick_edit_with_bad_stock_shows_the_error_in_the_row(signed_in, db: AsyncSession):
    product = await make_product(db, stock=5)
    token = csrf_of((await signed_in.get("/admin/products/")).text)

    response = await signed_in.post(
        f"/admin/products/{product.id}/quick",
        data={"price": "3.00", "stock": "-1", "_csrf_token": token},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 400
    assert f'id="product-{product.id}"' in response.text and "&gt;= 0" in response.text
    await db.refresh(product)
    assert product.stock == 5


async def test_a_move_the_lifecycle_forbids_is_refused_with_a_page(signed_in, db: AsyncSession):
    order = await make_order(
        db, await make_user(db), status=OrderStatus.DELIVERED, with_invoice_job=False
    )
    detail = await signed_in.get(f"/admin/orders/{order.id}")
    assert 'id="moves"' not in detail.text  # no buttons for a delivered order

    response = await post(
        signed_in, f"/admin/orders/{order.id}", f"/admin/orders/{order.id}/status", status="shipped"
    )

    assert response.status_code == 409 and "text/html" in response.headers["content-type"]
    await db.refresh(order)
    assert order.status == OrderStatus.DELIVERED


async def test_cancel_without_confirmation_asks_first(signed_in, db: AsyncSession):
    order = await make_order(db, await make_user(db), with_invoice_job=False)

    response = await post(
        signed_in,
        f"/admin/orders/{order.id}",
        f"/admin/orders/{order.id}/status",
        status="cancelled",
    )

    assert response.headers["location"] == f"/admin/orders/{order.id}/cancel"
    await db.refresh(order)
    assert order.status == OrderStatus.PENDING


async def test_redeliver_a_failed_webhook(signed_in, db: AsyncSession, postgres_url):
    order = await make_order(db, await make_user(db), with_invoice_job=False)
    event_id = uuid.uuid4()
    db.add(
        WebhookEvent(
            event_id=event_id, order_id=order.id, kind="order.shipped", payload={}, outcome="failed"
        )
    )
    await db.commit()
    dashboard = await signed_in.get("/admin/")
    assert "Failed deliveries: <strong>1</strong>" in dashboard.text

    response = await post(
        signed_in,
        "/admin/webhooks/?outcome=failed",
        f"/admin/webhooks/{event_id}/redeliver",
        back="/admin/webhooks/",
    )

    assert response.status_code == 303
    event = await db.scalar(select(WebhookEvent).execution_options(populate_existing=True))
    assert event is not None and event.outcome == Outcome.PENDING
    jobs = (await db.execute(text("SELECT task_name FROM procrastinate_jobs"))).scalars().all()
    assert "orders:notify_shipped" in jobs


async def test_retry_a_failed_job(signed_in, db: AsyncSession):
    job_id = (
        await db.execute(
            text(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, attempts)"
                " VALUES ('default', 'orders:render_invoice', '{\"order_id\": 7}', 'failed', 1)"
                " RETURNING id"
            )
        )
    ).scalar_one()
    await db.execute(
        text(
            "INSERT INTO job_failures (job_id, task_name, attempt, error) VALUES"
            " (:id, 'orders:render_invoice', 1, 'Traceback ...\nValueError: no such font')"
        ),
        {"id": job_id},
    )
    await db.commit()
    page = await signed_in.get("/admin/jobs/")
    assert "orders:render_invoice" in page.text
    assert "ValueError: no such font" in page.text  # why it failed, before retrying it

    response = await post(signed_in, "/admin/jobs/", f"/admin/jobs/{job_id}/retry")
    again = await post(signed_in, "/admin/jobs/", f"/admin/jobs/{job_id}/retry")

    assert response.status_code == 303
    assert again.status_code == 409  # no longer failed
    status = await db.scalar(
        text(f"SELECT status::text FROM procrastinate_jobs WHERE id = {job_id}")
    )
    assert status == "todo"


async def test_unknown_objects_get_a_404_page(signed_in):
    for path in ("/admin/orders/999999", "/admin/products/999999", "/admin/users/999999"):
        response = await signed_in.get(path)
        assert response.status_code == 404 and "text/html" in response.headers["content-type"]


async def test_dashboard_counts_todays_orders_and_revenue(signed_in, db: AsyncSession):
    customer = await make_user(db)
    await make_order(db, customer, [("Desk", "100.00", 1)], with_invoice_job=False)
    await make_order(
        db, customer, [("Chair", "40.00", 1)], status=OrderStatus.CANCELLED, with_invoice_job=False
    )
    await make_product(db, stock=0)
    await make_product(db, stock=3)

    page = (await signed_in.get("/admin/")).text

    assert "100.00" in page  # revenue today and this week, the cancelled order left out
    assert "140.00" not in page
    assert "Out of stock: <strong>1</strong>" in page  # two products made by make_order have 100
    assert "Low (≤ 5): <strong>1</strong>" in page
    assert 'href="/admin/orders/?status=cancelled&amp;created_from=' in page
