"""The dashboard: today's orders and revenue, stock, webhooks and the job queue at a glance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from litestar import get
from litestar.response import Template

from shop import queue
from shop.catalog.services import ProductService
from shop.console.pages import CacheDep, Db, SettingsDep, StaffRequest, render
from shop.orders import webhooks
from shop.orders.models import OrderStatus
from shop.orders.reader import OrderReader


@get("/")
async def dashboard(
    request: StaffRequest, db_session: Db, settings: SettingsDep, cache: CacheDep
) -> Template:
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())
    reader = OrderReader(db_session, cache, settings)
    by_status, revenue_today, revenue_week = await reader.dashboard_figures(today, week)
    out_of_stock, low_stock = await ProductService(
        db_session, cache, settings.cache.products_ttl, request.app.state.engine
    ).stock_counts(settings.console.low_stock)
    failed_webhooks = await webhooks.count_deliveries(db_session, outcome=webhooks.Outcome.FAILED)
    jobs = await queue.status_counts(db_session)
    return render(
        request,
        "dashboard/index.html",
        today=today.date().isoformat(),
        week_start=week.date().isoformat(),
        statuses=[(s.value, by_status.get(s.value, 0)) for s in OrderStatus],
        orders_today=sum(by_status.values()),
        revenue_today=revenue_today,
        revenue_week=revenue_week,
        out_of_stock=out_of_stock,
        low_stock=low_stock,
        low_threshold=settings.console.low_stock,
        failed_webhooks=failed_webhooks,
        jobs_waiting=jobs.get("todo", 0),
        jobs_running=jobs.get("doing", 0),
        jobs_failed=jobs.get("failed", 0),
    )
