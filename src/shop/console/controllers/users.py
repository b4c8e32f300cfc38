"""Users: the list (staff, active, joined; search by e-mail or username), the detail with
profile and orders, phone/address edits, and the staff/active flags through
`UserService.set_flags`, the service behind ``PATCH /api/admin/users/{id}``."""

from __future__ import annotations

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from shop.accounts.schemas import ProfileUpdate
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
    parse_bool,
    parse_date,
    parse_int,
    render,
    see_other,
)
from shop.errors import InvalidInput
from shop.orders.reader import OrderReader

PAGE = 20
FLAGS = {
    "activate": ("is_active", True),
    "deactivate": ("is_active", False),
    "grant-staff": ("is_staff", True),
    "revoke-staff": ("is_staff", False),
}


class UserPages(Controller):
    path = "/users"

    @get("/")
    async def list_users(
        self,
        request: StaffRequest,
        db_session: Db,
        search: Query = None,
        staff: Query = None,
        active: Query = None,
        joined_from: Query = None,
        joined_to: Query = None,
        offset: Query = None,
    ) -> Template:
        params = {
            "search": search or "",
            "staff": staff or "",
            "active": active or "",
            "joined_from": joined_from or "",
            "joined_to": joined_to or "",
        }
        start = parse_int(offset, default=0, low=0, high=1_000_000)
        users, total = await UserService(session=db_session).staff_page(
            search=(search or "")[:100] or None,
            is_staff=parse_bool(staff),
            is_active=parse_bool(active),
            joined_from=day_start(parse_date(joined_from)),
            joined_to=day_end(parse_date(joined_to)),
            limit=PAGE,
            offset=start,
        )
        return render(
            request,
            "users/_results.html" if is_htmx(request) else "users/list.html",
            users=users,
            params=params,
            pager=Pager(total, PAGE, start, params),
        )

    @get("/{user_id:int}")
    async def user_detail(
        self,
        request: StaffRequest,
        db_session: Db,
        cache: CacheDep,
        settings: SettingsDep,
        user_id: FromPath[int],
    ) -> Template:
        profile = await UserService(session=db_session).get_profile(user_id)
        orders, total = await OrderReader(db_session, cache, settings).staff_search(
            user_id=user_id, limit=50
        )
        return render(
            request,
            "users/detail.html",
            profile=profile,
            orders=orders,
            orders_total=total,
            history=await audit.entries_for(db_session, "user", user_id),
            is_self=user_id == request.user.id,
        )

    @post("/{user_id:int}/flags", status_code=303)
    async def set_flag(
        self, request: StaffRequest, db_session: Db, cache: CacheDep, user_id: FromPath[int]
    ) -> Redirect:
        """A staff member cannot change their own flags (the service refuses with 409)."""
        action = str((await request.form()).get("action", ""))
        if action not in FLAGS:
            raise InvalidInput(f"Unknown action {action!r}.")
        field, value = FLAGS[action]
        users = UserService(session=db_session)
        before = await users.get_profile(user_id) if user_id != request.user.id else None
        old = getattr(before, field) if before else None
        await users.set_flags(user_id, cache=cache, actor_id=request.user.id, **{field: value})
        await audit.record(
            db_session,
            actor_id=request.user.id,
            action=f"user.{action}",
            object_type="user",
            object_id=user_id,
            before={field: old},
            after={field: value},
        )
        return see_other(f"/admin/users/{user_id}")

    @post("/{user_id:int}/profile", status_code=303)
    async def update_profile(
        self, request: StaffRequest, db_session: Db, cache: CacheDep, user_id: FromPath[int]
    ) -> Redirect:
        form = await request.form()
        users = UserService(session=db_session)
        current = await users.get_profile(user_id)
        before = {"phone": current.phone, "address": current.address}
        try:
            changes = msgspec.convert(
                {"phone": str(form.get("phone", "")), "address": str(form.get("address", ""))},
                ProfileUpdate,
            )
        except msgspec.ValidationError as exc:
            raise InvalidInput(str(exc)) from None
        user = await users.update_profile(user_id, changes, cache)
        after = {"phone": user.phone, "address": user.address}
        if after != before:
            await audit.record(
                db_session,
                actor_id=request.user.id,
                action="user.profile",
                object_type="user",
                object_id=user_id,
                before=before,
                after=after,
            )
        return see_other(f"/admin/users/{user_id}")
