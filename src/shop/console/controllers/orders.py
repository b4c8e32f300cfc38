"""Orders: the list (status, customer, dates, search by customer e-mail or username), the
detail (items, totals, history with who moved it, invoice, webhook deliveries) and the
lifecycle's moves as buttons, all through `OrderReader` and `Lifecycle`."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from shop.accounts.users import UserService
from shop.console import audit
from shop.console.pages import (
    CacheDep,
    Db,
    Pager,
    Query,
    SettingsDep,
    StaffRequest,
    day_end,
    day_start,
    is_htmx,
    parse_date,
    parse_int,
    render,
    see_other,
)
from shop.errors import InvalidInput
from shop.orders import invoices, webhooks
from shop.orders.errors import OrderNotFound
from shop.orders.lifecycle import Lifecycle, allowed_next
from shop.orders.models import OrderStatus
from shop.orders.reader import OrderReader
from shop.schemas import MAX_ID

PAGE = 20


class OrderPages(Controller):
    path = "/orders"

    @get("/")
    async def list_orders(
        self,
        request: StaffRequest,
        db_session: Db,
        cache: CacheDep,
        settings: SettingsDep,
        status: Query = None,
        customer: Query = None,
        search: Query = None,
        created_from: Query = None,
        created_to: Query = None,
        offset: Query = None,
    ) -> Template:
        params = {
            "status": status or "",
            "customer": customer or "",
            "search": search or "",
            "created_from": created_from or "",
            "created_to": created_to or "",
        }
        start = parse_int(offset, default=0, low=0, high=1_000_000)
        wanted = status if status in {s.value for s in OrderStatus} else None
        customer_id = parse_int(customer, default=0, low=0, high=MAX_ID) or None
        rows, total = await OrderReader(db_session, cache, settings).staff_search(
            search=(search or "")[:100] or None,
            status=OrderStatus(wanted) if wanted else None,
            user_id=customer_id,
            created_from=day_start(parse_date(created_from)),
            created_to=day_end(parse_date(created_to)),
            limit=PAGE,
            offset=start,
        )
        return render(
            request,
            "orders/_results.html" if is_htmx(request) else "orders/list.html",
            rows=rows,
            params=params,
            statuses=[s.value for s in OrderStatus],
            pager=Pager(total, PAGE, start, params),
        )

    @get("/{order_id:int}")
    async def order_detail(
        self,
        request: StaffRequest,
        db_session: Db,
        cache: CacheDep,
        settings: SettingsDep,
        order_id: FromPath[int],
    ) -> Template:
        return await self._detail(request, db_session, cache, settings, order_id)

    async def _detail(
        self,
        request: StaffRequest,
        db_session: Db,
        cache: CacheDep,
        settings: SettingsDep,
        order_id: FromPath[int],
        *,
        confirm_cancel: bool = False,
        error: Query = None,
        status_code: int = 200,
    ) -> Template:
        orders = await OrderReader(db_session, cache, settings).load([order_id])
        if not orders:
            raise OrderNotFound()
        (order,) = orders
        users = UserService(session=db_session)
        customer = await users.get_profile(order.user)
        actors = {c.actor for c in order.history if c.actor and c.actor != customer.id}
        names = {customer.id: customer.username, **await users.names_of(sorted(actors))}
        return render(
            request,
            "orders/detail.html",
            status_code=status_code,
            order=order,
            customer=customer,
            names=names,
            moves=[s.value for s in allowed_next(order.status, request.user)],
            deliveries=await webhooks.deliveries_of_order(db_session, order_id),
            history=await audit.entries_for(db_session, "order", order_id),
            confirm_cancel=confirm_cancel,
            error=error,
        )

    @get("/{order_id:int}/cancel")
    async def confirm_cancel(
        self,
        request: StaffRequest,
        db_session: Db,
        cache: CacheDep,
        settings: SettingsDep,
        order_id: FromPath[int],
    ) -> Template:
        """Cancelling asks first: this page shows the order with a confirmation form."""
        return await self._detail(
            request, db_session, cache, settings, order_id, confirm_cancel=True
        )

    @post("/{order_id:int}/status", status_code=303)
    async def move(
        self,
        request: StaffRequest,
        db_session: Db,
        cache: CacheDep,
        settings: SettingsDep,
        order_id: FromPath[int],
    ) -> Redirect | Template:
        form = await request.form()
        raw = str(form.get("status", ""))
        if raw not in {s.value for s in OrderStatus}:
            raise InvalidInput(f"Unknown status {raw!r}.")
        target = OrderStatus(raw)
        if target is OrderStatus.CANCELLED and form.get("confirm") != "yes":
            return see_other(f"/admin/orders/{order_id}/cancel")
        before = await OrderReader(db_session, cache, settings).load([order_id])
        order = await Lifecycle(db_session, cache, settings).move(request.user, order_id, target)
        await audit.record(
            db_session,
            actor_id=request.user.id,
            action=f"order.{target.value}",
            object_type="order",
            object_id=order_id,
            before={"status": before[0].status.value} if before else None,
            after={"status": order.status.value},
        )
        return see_other(f"/admin/orders/{order_id}")

    @get("/{order_id:int}/invoice")
    async def invoice(
        self, request: StaffRequest, db_session: Db, order_id: FromPath[int]
    ) -> Response[bytes]:
        invoice = await invoices.invoice_for(db_session, order_id, request.user)
        return Response(
            content=invoice.pdf,
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="{invoices.invoice_filename(invoice)}"',
                "Cache-Control": "private, no-store",
            },
        )
