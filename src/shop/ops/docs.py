"""API documentation pages that work offline.

``/api/schema/`` is Litestar's generated OpenAPI 3.1 document. ``/api/docs/``
(Swagger UI) and ``/api/redoc/`` (ReDoc) are small HTML pages whose JavaScript
and CSS are served by this app from ``drf-spectacular-sidecar``, a package that
ships the upstream builds of both, so no page ever reaches for a CDN.

The schema router is mounted at ``/api/schema`` (not ``/api``) so that unknown
``/api/...`` paths still fall through to the JSON 404, not Litestar's HTML page.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from litestar import Controller, MediaType, Router, get
from litestar.static_files import create_static_files_router

ASSETS_PATH = "/api/docs/assets"


def _assets_dir() -> Path:
    return Path(str(files("drf_spectacular_sidecar"))) / "static" / "drf_spectacular_sidecar"


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


def docs_routes() -> list[Controller | Router | type[Controller]]:
    assets = create_static_files_router(
        path=ASSETS_PATH,
        directories=[_assets_dir()],
        include_in_schema=False,
        opt={"exclude_from_auth": True},
        cache_control=None,
    )
    return [DocsController, assets]
