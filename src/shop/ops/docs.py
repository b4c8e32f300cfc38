"""API documentation pages that work offline.

``/api/schema/`` is Litestar's generated OpenAPI 3.1 document. ``/api/docs/``
(Swagger UI) and ``/api/redoc/`` (ReDoc) are small HTML pages whose JavaScript
and CSS are served by this app from ``docs_assets/``, the upstream builds of
both vendored with their licences, so no page ever reaches for a CDN.
``scripts/refresh_docs_assets.py`` refreshes them from the npm registry
(``docs_assets/*/VERSION`` says which versions are there). Litestar's Swagger
and ReDoc render plugins would serve these pages below the schema path
(``/api/schema/swagger``), not at the URLs the Django app had, hence these two
small pages.

The schema router is mounted at ``/api/schema`` (not ``/api``) so that unknown
``/api/...`` paths still fall through to the JSON 404, not Litestar's HTML page.

``GET /api/`` answers a small JSON index (`ApiIndex`): where the docs and the
schema are, and each resource collection, as absolute URLs like DRF's API root.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Router, get
from litestar.static_files import create_static_files_router

import shop

ASSETS_PATH = "/api/docs/assets"

COLLECTIONS = {
    "register": "/api/auth/register/",
    "login": "/api/auth/login/",
    "token_refresh": "/api/auth/token/refresh/",
    "profile": "/api/auth/profile/",
    "products": "/api/products/",
    "orders": "/api/orders/",
    "admin_orders": "/api/admin/orders/",
    "admin_webhook_deliveries": "/api/admin/webhooks/deliveries/",
}
"""The index's resources: name -> path (collections, and the account endpoints)."""


class ApiIndex(msgspec.Struct):
    """Where everything is; each value an absolute URL."""

    name: str
    version: str
    docs: str
    redoc: str
    schema: str
    health: str
    resources: dict[str, str]


def assets_dir() -> Path:
    """Where the vendored Swagger UI and ReDoc builds are (with their licences)."""
    return Path(str(files("shop.ops"))) / "docs_assets"


_SWAGGER = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shop API · Swagger UI</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui-dist/swagger-ui.css">
<link rel="icon" href="{ASSETS_PATH}/swagger-ui-dist/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-dist/swagger-ui-bundle.js"></script>
<script src="{ASSETS_PATH}/swagger-ui-dist/swagger-ui-standalone-preset.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "/api/schema/", dom_id: "#swagger-ui", deepLinking: true, persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout", validatorUrl: null
}});
</script></body></html>
""".encode()

_REDOC = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shop API · ReDoc</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body {{ margin: 0; padding: 0; }}</style></head>
<body><redoc spec-url="/api/schema/"></redoc>
<script src="{ASSETS_PATH}/redoc/bundles/redoc.standalone.js"></script>
</body></html>
""".encode()


class DocsController(Controller):
    path = "/api"
    include_in_schema = False
    opt = {"exclude_from_auth": True}

    @get("/docs", media_type=MediaType.HTML, sync_to_thread=False)
    def swagger(self) -> bytes:
        return _SWAGGER

    @get("/redoc", media_type=MediaType.HTML, sync_to_thread=False)
    def redoc(self) -> bytes:
        return _REDOC


@get(
    ["/api", "/api/"],
    tags=["operations"],
    summary="Index of the API: docs, schema and each resource",
    opt={"exclude_from_auth": True},
    security=[{}],
    sync_to_thread=False,
)
def api_index(request: Request[Any, Any, Any]) -> ApiIndex:
    """Links to the Swagger UI and ReDoc pages, the OpenAPI document and every resource."""
    base = str(request.base_url).rstrip("/")
    return ApiIndex(
        name="shop",
        version=shop.__version__,
        docs=f"{base}/api/docs/",
        redoc=f"{base}/api/redoc/",
        schema=f"{base}/api/schema/",
        health=f"{base}/health/ready",
        resources={name: base + path for name, path in COLLECTIONS.items()},
    )


def docs_routes() -> list[Controller | Router | type[Controller] | Any]:
    assets = create_static_files_router(
        path=ASSETS_PATH,
        directories=[assets_dir()],
        include_in_schema=False,
        opt={"exclude_from_auth": True},
        cache_control=None,
    )
    return [DocsController, api_index, assets]
