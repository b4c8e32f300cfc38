"""Request limits enforced before any handler runs: URL, headers, body size and JSON nesting.

Pure ASGI, inside `EdgeMiddleware` (so the answers still carry the request id
and the security headers), outside Litestar (so a hostile request costs no
routing, no authentication and no database round trip). Every refusal is RFC
9457 problem details:

* URL (path + query) longer than ``HTTP_MAX_URL_BYTES`` → 414.
* Header block larger than ``HTTP_MAX_HEADER_BYTES`` → 431.
* ``Content-Length`` above ``MAX_BODY_BYTES`` → 413 at once, without reading a
  byte; a malformed ``Content-Length`` → 400. A chunked body that grows past
  the limit is refused by Litestar's own ``request_max_body_size`` (413).
* A body sent to ``/api/`` that is not declared as JSON (``Content-Type``
  missing or not ``application/json`` / ``*+json``) → 415. Litestar decodes a
  ``data`` argument as JSON whatever the declared type, so without this check
  an undeclared body would skip the depth check below and reach msgspec. An
  empty body passes (some POSTs carry none).
* A JSON body nested deeper than ``MAX_JSON_DEPTH`` → 400. msgspec decodes
  recursively and raises ``RecursionError`` (a 500) on a few thousand levels of
  ``[[[[``; no field of our API nests deeper than a handful. JSON bodies are
  buffered here (they are bounded by the size limit, and the handler would
  read them whole anyway) and replayed to the app unchanged.

Paths outside ``/api/`` (the staff console's form posts) keep their own media
types; a body they declare as JSON is still depth-checked.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType

from shop.errors import problem_body

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send

    from shop.settings import HttpSettings

__all__ = ["LimitsMiddleware", "json_depth", "replay"]

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPENERS = b"[{"
_CLOSERS = b"]}"
# translate() table: every byte that is not a bracket is deleted.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _OPENERS + _CLOSERS)


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays/objects in ``body`` (brackets inside strings do not count)."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    steps = (1 if byte in _OPENERS else -1 for byte in brackets)
    return max(accumulate(steps))


def _is_json(scope: Scope) -> bool:
    """``application/json`` or a ``+json`` type, parameters (``; charset=...``) aside."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json" or media_type.endswith(b"+json")
    return False


API_PREFIX = "/api/"


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, settings: HttpSettings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.max_url = settings.max_url_bytes
        self.max_headers = settings.max_header_bytes
        self.max_depth = settings.max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        refusal = self._refuse_head(scope)
        if refusal is not None:
            await send_problem(send, *refusal)
            return
        if scope.get("method") not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        is_json = _is_json(scope)
        if is_json or scope["path"].startswith(API_PREFIX):
            body, more = await self._read_bounded(receive)
            if more:
                await send_problem(
                    send, 413, f"The request body is larger than {self.max_body} bytes."
                )
                return
            if body and not is_json:
                await send_problem(
                    send,
                    415,
                    "The request body must be JSON, sent with Content-Type: application/json.",
                )
                return
            if body.count(b"[") + body.count(b"{") > self.max_depth:
                depth = json_depth(body)
                if depth > self.max_depth:
                    await send_problem(
                        send,
                        400,
                        f"The JSON body is nested {depth} levels deep; at most "
                        f"{self.max_depth} are accepted.",
                    )
                    return
            receive = replay(body, receive)
        await self.app(scope, receive, send)

    def _refuse_head(self, scope: Scope) -> tuple[int, str] | None:
        url_bytes = len(scope.get("raw_path") or scope["path"].encode()) + len(
            scope["query_string"]
        )
        if url_bytes > self.max_url:
            return 414, f"The URL is longer than {self.max_url} bytes."
        header_bytes = 0
        content_length = None
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value) + 4
            if name == b"content-length":
                content_length = value
        if header_bytes > self.max_headers:
            return 431, f"The request headers are larger than {self.max_headers} bytes."
        if content_length is not None:
            if not content_length.isdigit() or len(content_length) > 18:
                return 400, "Content-Length is not a number."
            if int(content_length) > self.max_body:
                return 413, f"The request body is larger than {self.max_body} bytes."
        return None

    async def _read_bounded(self, receive: Receive) -> tuple[bytes, bool]:
        """The whole body, or what was read before it passed the limit and True."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return b"".join(chunks), False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False


def replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app, the already read ``body`` first."""
    sent = False

    async def replayed() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: http.disconnect when the client leaves

    return replayed


_TITLES = {
    400: "Bad Request",
    413: "Content Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
}


async def send_problem(send: Send, status: int, detail: str, title: str | None = None) -> None:
    """Answer with problem details straight from ASGI (no Litestar request exists yet)."""
    body = problem_body(status, detail, title=title or _TITLES.get(status, "Error"))
    start: Any = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    end: Any = {"type": "http.response.body", "body": body}
    await send(start)
    await send(end)
