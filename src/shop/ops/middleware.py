"""Outermost ASGI middleware: request ids, the Host allow-list, and security headers.

Pure ASGI (no per-request objects) because it wraps every request, including
404s for unknown paths. The request id is echoed when the client sent a sane
one (``[A-Za-z0-9._-]{1,128}``), otherwise generated, and is put on the
response, into ``scope["state"]`` and into a context variable the log
formatter reads. Every request ends with one access-log line (logger
``shop.access``: method, path, status, duration; JSON fields under ``http``
in production mode) carrying that request id.

Litestar's own Host check (``allowed_hosts=``, `AllowedHostsConfig`) is not
used: it answers a refused Host with its own JSON, not problem details, from
inside the router (`shop._compat.litestar` says more).
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any, cast

from shop.errors import problem_body

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

access_logger = logging.getLogger("shop.access")

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_SANE_ID = re.compile(rb"^[A-Za-z0-9._\-]{1,128}$")

_DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; "
    b"connect-src 'self'; frame-ancestors 'none'"
)
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
_CONSOLE_CSP = (
    # The staff console (`shop.console`): our own scripts and styles only, no inline code.
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

_STATIC_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...]) -> None:
        self.app = app
        self.allow_any_host = "*" in allowed_hosts
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        if self.allowed_hosts & {"localhost", "127.0.0.1"}:
            # The IPv6 loopback is the same machine; clients resolving localhost to ::1 send it.
            self.allowed_hosts.add("[::1]")
        self.wildcards = tuple(h[1:].lower() for h in allowed_hosts if h.startswith("*."))

    def _host_allowed(self, scope: Scope) -> bool:
        if self.allow_any_host:
            return True
        host = b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                break
        hostname = host.decode("latin-1").lower()
        # "[::1]:8000" keeps its brackets; "example.com:8000" loses the port.
        hostname = (
            hostname.split("]", 1)[0] + "]"
            if hostname.startswith("[")
            else hostname.rsplit(":", 1)[0]
        )
        return hostname in self.allowed_hosts or (
            bool(self.wildcards) and hostname.endswith(self.wildcards)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]  # lifespan too
            await self.app(scope, receive, send)
            return
        incoming = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value
                break
        request_id = incoming.decode() if _SANE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]
        if path.startswith("/admin"):
            csp = _CONSOLE_CSP
        elif path.startswith(("/api/docs", "/api/redoc")):
            csp = _DOCS_CSP
        else:
            csp = _API_CSP
        extra = [
            *_STATIC_HEADERS,
            (b"content-security-policy", csp),
            (b"x-request-id", request_id.encode()),
        ]

        started = time.perf_counter()
        status = 500
        # HEAD is GET without the body (RFC 9110): clients check pages with `curl -I`.
        head = scope.get("method") == "HEAD"
        if head:
            scope = cast("Scope", {**scope, "method": "GET"})

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                headers.extend(extra)
                message["headers"] = headers
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            if not self._host_allowed(scope):
                await _send_problem(
                    send_with_headers, 400, "Bad Request", "Host header is not allowed."
                )
                return
            await self.app(scope, receive, send_with_headers)
        finally:
            if access_logger.isEnabledFor(logging.INFO):
                duration_ms = round((time.perf_counter() - started) * 1000, 2)
                access_logger.info(
                    "%s %s %s %.1fms",
                    scope.get("method", "-"),
                    path,
                    status,
                    duration_ms,
                    extra={
                        "http": {
                            "method": scope.get("method", "-"),
                            "path": path,
                            "status": status,
                            "duration_ms": duration_ms,
                        }
                    },
                )
            request_id_var.reset(token)


async def _send_problem(send: Any, status: int, title: str, detail: str) -> None:
    body = problem_body(status, detail, title=title)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
