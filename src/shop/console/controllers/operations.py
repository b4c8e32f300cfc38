"""Webhook deliveries (every attempt, redeliver) and failed jobs (retry)."""

from __future__ import annotations

import uuid

from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from shop import queue
from shop.console import audit
from shop.console.pages import Db, Pager, Query, StaffRequest, is_htmx, parse_int, render, see_other
from shop.orders import webhooks
from shop.schemas import MAX_ID

PAGE = 20


class WebhookPages(Controller):
    path = "/webhooks"

    @get("/")
    async def list_deliveries(
        self,
        request: StaffRequest,
        db_session: Db,
        outcome: Query = None,
        order: Query = None,
        offset: Query = None,
    ) -> Template:
        params = {"outcome": outcome or "", "order": order or ""}
        start = parse_int(offset, default=0, low=0, high=1_000_000)
        wanted = outcome if outcome in {o.value for o in webhooks.Outcome} else None
        order_id = parse_int(order, default=0, low=0, high=MAX_ID) or None
        events, attempts, total = await webhooks.list_deliveries(
            db_session,
            order_id=order_id,
            outcome=webhooks.Outcome(wanted) if wanted else None,
            limit=PAGE,
            offset=start,
        )
        return render(
            request,
            "operations/_webhooks.html" if is_htmx(request) else "operations/webhooks.html",
            deliveries=list(zip(events, attempts, strict=True)),
            params=params,
            outcomes=[o.value for o in webhooks.Outcome],
            pager=Pager(total, PAGE, start, params),
        )

    @post("/{event_id:uuid}/redeliver", status_code=303)
    async def redeliver(
        self, request: StaffRequest, db_session: Db, event_id: FromPath[uuid.UUID]
    ) -> Redirect:
        event = await webhooks.redeliver(db_session, event_id)
        await audit.record(
            db_session,
            actor_id=request.user.id,
            action="webhook.redeliver",
            object_type="order",
            object_id=event.order_id,
            after={"event_id": str(event_id)},
        )
        back = str((await request.form()).get("back", ""))
        return see_other(back if back.startswith("/admin/") else "/admin/webhooks/")


class JobPages(Controller):
    path = "/jobs"

    @get("/")
    async def failed_jobs(
        self, request: StaffRequest, db_session: Db, offset: Query = None
    ) -> Template:
        start = parse_int(offset, default=0, low=0, high=1_000_000)
        jobs, total = await queue.failed_jobs(db_session, limit=PAGE, offset=start)
        return render(
            request,
            "operations/jobs.html",
            jobs=jobs,
            counts=await queue.status_counts(db_session),
            pager=Pager(total, PAGE, start, {}),
        )

    @post("/{job_id:int}/retry", status_code=303)
    async def retry(self, request: StaffRequest, db_session: Db, job_id: FromPath[int]) -> Redirect:
        await queue.retry_failed(db_session, job_id)
        await audit.record(
            db_session,
            actor_id=request.user.id,
            action="job.retry",
            object_type="job",
            object_id=job_id,
            before={"status": "failed"},
            after={"status": "todo"},
        )
        return see_other("/admin/jobs/")
