"""What every console page handler shares: the session check, rendering, forms, paging.

A handler stays as thin as an API controller: read the form or the query,
call one service, render a template (or, after a change, redirect: POST →
303 → GET, so a reload never repeats a change). htmx requests (``HX-Request``)
get the fragment they asked for instead of the whole page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.security import CurrentUser
from shop.cache import Cache
from shop.console.sessions import COOKIE, current_staff
from shop.settings import Settings

__all__ = [
    "PUBLIC",
    "CacheDep",
    "Db",
    "Pager",
    "Query",
    "SettingsDep",
    "StaffRequest",
    "day_end",
    "day_start",
    "parse_bool",
    "parse_date",
    "parse_int",
    "render",
    "see_other",
]

PUBLIC = "console_public"
"""Handler ``opt`` key: the page needs no session (the login page)."""

StaffRequest = Request[CurrentUser, Any, State]
Db = NamedDependency[AsyncSession]
CacheDep = NamedDependency[Cache]
SettingsDep = NamedDependency[Settings]
Query = FromQuery[str | None]
"""Every list filter arrives as text and is parsed leniently: a bad value is ignored, never a 500."""


async def require_staff(request: Request[Any, Any, State]) -> Response[Any] | None:
    """Router ``before_request``: a page without a valid staff session sends the browser to
    the login page (htmx requests are told to do a full redirect with ``HX-Redirect``)."""
    if request.route_handler.opt.get(PUBLIC):
        return None
    token = request.cookies.get(COOKIE)
    settings: Settings = request.app.state.settings
    user = None
    if token:
        user = await current_staff(
            request.app.state.engine,
            token,
            timedelta(minutes=settings.console.idle_minutes),
        )
    if user is None:
        target = "/admin/login"
        if request.method == "GET" and not request.headers.get("hx-request"):
            target += "?" + urlencode({"next": request.url.path})
        if request.headers.get("hx-request"):
            return Response(b"", status_code=204, headers={"HX-Redirect": target})
        return Redirect(target, status_code=303)
    request.scope["user"] = user
    return None


def render(
    request: Request[Any, Any, Any],
    template: str,
    status_code: int = 200,
    **context: Any,
) -> Template:
    user = request.scope.get("user")
    return Template(
        template_name=template,
        context={"user": user, "path": request.url.path, **context},
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def see_other(url: str) -> Redirect:
    return Redirect(url, status_code=303)


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def parse_int(raw: str | None, *, default: int, low: int, high: int) -> int:
    try:
        value = int(raw) if raw not in (None, "") else default
    except ValueError:
        value = default
    return min(max(value, low), high)


def parse_bool(raw: str | None) -> bool | None:
    return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
        (raw or "").strip().lower()
    )


def parse_date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw.strip()) if raw and raw.strip() else None
    except ValueError:
        return None


def day_start(day: date | None) -> datetime | None:
    return datetime.combine(day, time.min, tzinfo=UTC) if day else None


def day_end(day: date | None) -> datetime | None:
    return datetime.combine(day, time.max, tzinfo=UTC) if day else None


@dataclass(frozen=True, slots=True)
class Pager:
    """Previous/next links of a list page, keeping its filters."""

    total: int
    limit: int
    offset: int
    params: dict[str, str]

    def _link(self, offset: int) -> str:
        params = {k: v for k, v in self.params.items() if v not in ("", None) and k != "offset"}
        if offset:
            params["offset"] = str(offset)
        return "?" + urlencode(params)

    @property
    def previous(self) -> str | None:
        return self._link(max(self.offset - self.limit, 0)) if self.offset > 0 else None

    @property
    def next(self) -> str | None:
        nxt = self.offset + self.limit
        return self._link(nxt) if nxt < self.total else None

    @property
    def first_shown(self) -> int:
        return min(self.offset + 1, self.total)

    @property
    def last_shown(self) -> int:
        return min(self.offset + self.limit, self.total)
