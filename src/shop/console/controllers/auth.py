"""Sign-in and sign-out pages."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.response import Template

from shop.accounts.controllers import client_address
from shop.accounts.throttle import LoginThrottle
from shop.console import sessions
from shop.console.pages import PUBLIC, Db, Query, SettingsDep, render, see_other
from shop.errors import ShopError


def _safe_next(raw: str | None) -> str:
    """Only a console path: never an open redirect to another site."""
    if raw and raw.startswith("/admin/") and not raw.startswith("//"):
        return raw
    return "/admin/"


class AuthPages(Controller):
    path = "/"

    @get("/login", opt={PUBLIC: True})
    async def login_page(self, request: Request[Any, Any, State], next: Query = None) -> Template:
        return render(request, "auth/login.html", next=_safe_next(next), email="", error=None)

    @post("/login", opt={PUBLIC: True}, status_code=303)
    async def login(
        self, request: Request[Any, Any, State], db_session: Db, settings: SettingsDep
    ) -> Response[Any]:
        form = await request.form()
        email = str(form.get("email", "")).strip()
        password = str(form.get("password", ""))
        target = _safe_next(str(form.get("next", "")))
        throttle = LoginThrottle(request.app.state.session_maker, settings)
        try:
            _, token = await sessions.sign_in(
                db_session,
                settings,
                throttle,
                email=email,
                password=password,
                client=client_address(request),
            )
        except ShopError as exc:
            await db_session.rollback()
            headers = exc.headers if exc.status_code == 429 else {}
            page = render(
                request,
                "auth/login.html",
                status_code=exc.status_code,
                next=target,
                email=email,
                error=exc.detail,
            )
            page.headers.update(headers)
            return page
        secure = settings.console.secure_cookie
        if secure is None:
            secure = request.url.scheme == "https"
        response = see_other(target)
        response.set_cookie(
            sessions.COOKIE,
            token,
            path="/admin",
            httponly=True,
            secure=secure,
            samesite="lax",
        )
        return response

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, State], db_session: Db) -> Response[Any]:
        token = request.cookies.get(sessions.COOKIE)
        if token:
            await sessions.sign_out(db_session, token)
        response = see_other("/admin/login")
        response.delete_cookie(sessions.COOKIE, path="/admin")
        return response
