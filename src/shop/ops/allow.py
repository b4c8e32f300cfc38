"""A correct ``Allow`` header on OPTIONS answers.

Litestar 2.25 builds the automatic OPTIONS handler of a path from the first
route handler registered there, so a path with GET and PATCH answers
``Allow: GET, OPTIONS`` (schemathesis' allow_header_conformance check found
it on /api/auth/profile, /api/orders, /api/orders/{id}, /api/products/{id}).
This wrapper rewrites the header from the app's full method map
(`shop._compat.litestar.route_methods`) once routing has set
``scope["path_template"]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType

from shop._compat.litestar import route_methods

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AllowHeaderMiddleware"]


class AllowHeaderMiddleware:
    def __init__(self, app: ASGIApp, litestar: Litestar) -> None:
        self.app = app
        self.litestar = litestar
        self._allow: dict[str, bytes] | None = None

    def _methods(self) -> dict[str, bytes]:
        if self._allow is None:  # built on first use: every route is registered by then
            self._allow = {
                path: ", ".join(sorted(methods)).encode()
                for path, methods in route_methods(self.litestar).items()
            }
        return self._allow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("method") != "OPTIONS":
            await self.app(scope, receive, send)
            return
        raw: Any = scope

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start":
                allow = self._methods().get(raw.get("path_template", ""))
                if allow is not None:
                    headers = [
                        (k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"
                    ]
                    headers.append((b"allow", allow))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_allow)
