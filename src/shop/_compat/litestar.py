"""What the shop relies on in Litestar 2.25 beyond its documented API, and why.

* `wrap_asgi_handler`: Litestar applies an app's ``middleware=`` after routing,
  per route handler, so a request that matches no route (404, 405) or is
  refused before routing never passes through it. The edge layers
  (`shop.ops.middleware.EdgeMiddleware`: request id, Host allow-list, security
  headers, access log; `shop.ops.limits.LimitsMiddleware`: size and shape
  limits; `shop.ops.allow.AllowHeaderMiddleware`) must see every request.
  Litestar has no public hook for middleware outside its router: its
  ``__call__`` sends every HTTP request to the instance attribute
  ``asgi_handler`` (built in ``__init__``, wrapping the router in the
  exception handler and CORS), so we wrap that attribute.
* `route_methods`: the HTTP methods of every path, from the app's
  ``route_handler_method_map``. `shop.ops.allow` needs it because Litestar 2.25
  builds a path's automatic OPTIONS answer from the first handler registered
  there (``Allow: GET, OPTIONS`` on a path that also takes PATCH).

Litestar offers some of what the edge does, and the shop does not use it:
``allowed_hosts=`` / ``AllowedHostsConfig`` answers a refused Host with its own
``{"message": ...}`` JSON (not problem+json) inside the router, after the
request id and headers would have to be set; the problem-details plugin renders
only its own ``ProblemDetailsException`` (`shop.errors` renders every error,
database outages included); the Swagger and ReDoc render plugins serve below
the schema path (``/api/schema/...``) while the docs live at ``/api/docs/`` and
``/api/redoc/`` (`shop.ops.docs`), the URLs the Django app had.

``tests/platform/test_compat_litestar.py`` checks each use against the
installed Litestar (and that the OPTIONS bug is still there: when it fails,
`shop.ops.allow` can go); pyproject.toml bounds Litestar below 2.26.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import ASGIApp

__all__ = ["route_methods", "wrap_asgi_handler"]

_PARAM_TYPE = re.compile(r"\{(\w+):[^}]+\}")


def wrap_asgi_handler(app: Litestar, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
    """Put ``wrap(handler)`` outside Litestar's router and exception handler: it sees every request."""
    app.asgi_handler = wrap(app.asgi_handler)


def route_methods(app: Litestar) -> dict[str, frozenset[str]]:
    """Every path template (``/api/orders/{order_id}``, without types) and the methods it takes."""
    return {
        _PARAM_TYPE.sub(r"{\1}", path): frozenset(methods)
        for path, methods in app.route_handler_method_map.items()
    }
