"""`create_app(settings)`: joins each domain's routes, the shared plugins and the error handlers.

Request flow: `EdgeMiddleware` (request id, Host allow-list, security headers)
→ `LimitsMiddleware` (URL, header, body size and JSON depth limits) → Litestar
routing → Prometheus request metrics → `JWTAuthMiddleware` (every route not marked public) →
`StrictInputMiddleware` (query and body types exactly as documented) → controller → service (business rules) → repository (queries), all inside the
one transaction `shop.db.provide_session` owns.

Shared state lives on ``app.state``: ``settings``, ``engine``, ``session_maker``
(and ``statement_session_maker``, its autocommit twin, see `shop.db`) and ``cache``, created in the lifespan and closed on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Response, Router
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Server, Tag
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import shop
from shop._compat.litestar import wrap_asgi_handler
from shop.accounts.controllers import routes as account_routes
from shop.accounts.security import JWTAuthMiddleware
from shop.cache import Cache, create_cache
from shop.catalog.controllers import routes as catalog_routes
from shop.console import routes as console_routes
from shop.console import template_config as console_template_config
from shop.db import create_engine, create_session_maker, provide_session
from shop.errors import exception_handlers, problem_response
from shop.identity import read_cache_key_prefix
from shop.ops.allow import AllowHeaderMiddleware
from shop.ops.docs import docs_routes
from shop.ops.health import HealthController
from shop.ops.limits import LimitsMiddleware
from shop.ops.metrics import metrics_config, metrics_endpoint
from shop.ops.middleware import EdgeMiddleware
from shop.ops.openapi import CompleteJsonRenderPlugin
from shop.ops.strict import StrictInputMiddleware
from shop.orders.controllers import routes as order_routes
from shop.orders.delivery_controllers import routes as delivery_routes
from shop.orders.invoice_controllers import routes as invoice_routes
from shop.settings import Settings
from shop.tasks import bind_tasks

__all__ = ["create_app"]

logger = logging.getLogger("shop")

API_DESCRIPTION = """\
Order API of the shop: accounts with JWTs, a product catalogue, orders that
decrement stock atomically, PDF invoices and shipped-order webhooks.

Every endpoint except register, login, token refresh, docs, health and metrics
needs `Authorization: Bearer <access token>`. Errors are RFC 9457 problem
details (`application/problem+json`). Money is a decimal string with two places.
"""


def _provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def _provide_cache(state: State) -> Cache:
    cache: Cache = state.cache
    return cache


async def _json_not_found(response: Response[Any]) -> Response[Any]:
    """Litestar's schema router answers unknown paths below it with an HTML page; keep errors JSON."""
    if response.status_code == 404:
        return problem_response(404, "No such schema document; the OpenAPI JSON is at /api/schema/")
    return response


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        openapi_router=Router(
            "/api/schema", route_handlers=[], after_request=_json_not_found, include_in_schema=False
        ),
        title="shop",
        version=shop.__version__,
        description=API_DESCRIPTION,
        path="/api/schema",
        render_plugins=[CompleteJsonRenderPlugin(path=["/", "/openapi.json"])],
        servers=[Server(url="/")],
        components=Components(
            security_schemes={
                "BearerAuth": SecurityScheme(
                    type="http", scheme="bearer", bearer_format="JWT", description="Access token"
                )
            }
        ),
        security=[{"BearerAuth": []}],
        tags=[
            Tag(name="accounts", description="Registration, login, tokens, profile"),
            Tag(name="products", description="The catalogue"),
            Tag(name="orders", description="Checkout and the order lifecycle"),
            Tag(name="admin", description="Staff-only views"),
            Tag(name="operations", description="Health and metrics"),
        ],
        use_handler_docstrings=True,
        create_examples=False,
    )


async def _warn_if_unreachable(engine: AsyncEngine, url: str) -> None:
    """One warning line when the database cannot be reached at start-up.

    The API starts anyway (readiness answers 503 until the database is back),
    but an operator should not have to find out from a client. Runs beside
    start-up, so an unreachable host does not delay it by the connect timeout.
    """
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        where = make_url(url).render_as_string(hide_password=True)
        logger.warning(
            "database %s is unreachable at start-up (%s: %s); serving anyway, "
            "/health/ready answers 503 until it is back",
            where,
            type(exc).__name__,
            str(exc).splitlines()[0][:200] if str(exc) else "",
        )


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    bind_tasks()  # services defer the domains' tasks by name

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = create_engine(settings.database)
        # Read when the cache first needs it, so the API starts while PostgreSQL is down.
        cache = create_cache(settings.cache, key_prefix=lambda: read_cache_key_prefix(engine))
        app.state.engine = engine
        app.state.session_maker = create_session_maker(engine)
        app.state.statement_session_maker = create_session_maker(engine, autocommit=True)
        app.state.cache = cache
        probe = asyncio.create_task(_warn_if_unreachable(engine, settings.database.url))
        try:
            yield
        finally:
            probe.cancel()
            await cache.close()
            await engine.dispose()

    route_handlers: list[Any] = [
        HealthController,
        metrics_endpoint,
        *docs_routes(),
        *account_routes,
        *catalog_routes,
        *order_routes,
        *invoice_routes,
        *delivery_routes,
        *console_routes(settings),
    ]
    app = Litestar(
        route_handlers=route_handlers,
        lifespan=[lifespan],
        state=State({"settings": settings}),
        dependencies={
            "db_session": Provide(provide_session),
            "settings": Provide(_provide_settings, sync_to_thread=False),
            "cache": Provide(_provide_cache, sync_to_thread=False),
        },
        middleware=[
            metrics_config().middleware,
            DefineMiddleware(
                JWTAuthMiddleware,
                exclude=["^/api/schema"],
                exclude_from_auth_key="exclude_from_auth",
            ),
            StrictInputMiddleware,
        ],
        exception_handlers=exception_handlers,
        openapi_config=openapi_config(),
        template_config=console_template_config(),
        cors_config=CORSConfig(allow_origins=list(settings.http.cors_origins))
        if settings.http.cors_origins
        else None,
        compression_config=CompressionConfig(backend="gzip", minimum_size=1024),
        request_max_body_size=settings.http.max_body_bytes,
        debug=False,
        logging_config=None,
    )
    # Outside Litestar's router, so they see every request (shop._compat.litestar says why).
    # Outermost first: request id, Host check and headers; then the size/shape limits.
    wrap_asgi_handler(
        app,
        lambda handler: EdgeMiddleware(
            LimitsMiddleware(AllowHeaderMiddleware(handler, app), settings.http),
            settings.http.allowed_hosts,
        ),
    )
    return app
