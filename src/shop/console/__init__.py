"""The staff console at ``/admin/``: server-rendered pages over the domains' services.

How the pieces fit:

* `routes(settings)` returns one Litestar `Router` at ``/admin`` (joined in
  ``app.py`` like every domain's routes) plus the static assets at
  ``/admin/static`` (our stylesheet, and htmx vendored from npm with its
  licence: no CDN, no build step).
* Pages are Jinja2 templates (``templates/<page group>/``, one ``base/layout.html``)
  rendered by Litestar's template support; htmx swaps list results and list-row
  edits in place, and every page works as plain links and forms without JavaScript.
* Authentication is the console's own (the JSON API's bearer middleware is
  skipped with ``exclude_from_auth``): `sessions` signs staff in with the API
  login's verification and throttle and keeps the session in PostgreSQL;
  `pages.require_staff` checks it on every request.
* CSRF: Litestar's `CSRFMiddleware` on this router only (double-submit cookie
  and a ``_csrf_token`` form field or ``X-CSRFToken`` header), so the JSON API
  with bearer tokens never sees it.
* Every change goes through a domain service (`ProductService`, `Lifecycle`,
  `UserService.set_flags`, `webhooks.redeliver`, `queue.retry_failed`) and is
  recorded by `audit.record` in the same transaction.
* Security headers: `shop.ops.middleware` sends a CSP for ``/admin`` that
  allows scripts and styles from this origin only.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router
from litestar.config.csrf import CSRFConfig
from litestar.exceptions import PermissionDeniedException
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.plugins.htmx import HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from shop.errors import ShopError
from shop.schemas import money
from shop.settings import Settings

__all__ = ["STATIC_PATH", "routes", "template_config"]

HERE = Path(__file__).parent
STATIC_PATH = "/admin/static"
CSRF_COOKIE = "shop_console_csrf"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


def _money(value: Decimal | str | None) -> str:
    return money(Decimal(value)) if value is not None else "—"


def _configure(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters["when"] = _when
    engine.engine.filters["money"] = _money
    engine.engine.globals["STATIC"] = STATIC_PATH


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(
        directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=_configure
    )


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A refused console action (lifecycle, own flags, not found, ...) as a page, not JSON."""
    if isinstance(exc, ShopError):
        status, detail = exc.status_code, exc.detail
    else:
        status, detail = 403, "The form expired or was not sent from the console; reload and retry."
    return Template(
        template_name="base/error.html",
        context={
            "user": request.scope.get("user"),
            "path": request.url.path,
            "status": status,
            "detail": detail,
        },
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def routes(settings: Settings) -> list[Any]:
    from shop.console.controllers.auth import AuthPages
    from shop.console.controllers.dashboard import dashboard
    from shop.console.controllers.operations import JobPages, WebhookPages
    from shop.console.controllers.orders import OrderPages
    from shop.console.controllers.products import ProductPages
    from shop.console.controllers.users import UserPages
    from shop.console.pages import require_staff

    csrf = CSRFConfig(
        secret=settings.tokens.secret_key,
        cookie_name=CSRF_COOKIE,
        cookie_path="/admin",
        cookie_httponly=True,
        cookie_secure=settings.console.secure_cookie is True,
        cookie_samesite="lax",
    )
    console = Router(
        "/admin",
        route_handlers=[
            AuthPages,
            dashboard,
            ProductPages,
            OrderPages,
            UserPages,
            WebhookPages,
            JobPages,
        ],
        opt={"exclude_from_auth": True},
        middleware=[DefineMiddleware(CSRFMiddleware, config=csrf)],
        before_request=require_staff,
        request_class=HTMXRequest,
        include_in_schema=False,
        exception_handlers={ShopError: _error_page, PermissionDeniedException: _error_page},
    )
    static = create_static_files_router(
        path=STATIC_PATH,
        directories=[HERE / "static"],
        include_in_schema=False,
        opt={"exclude_from_auth": True},
        cache_control=None,
    )
    return [console, static]
