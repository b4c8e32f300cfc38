"""Strict input types: every body field and query parameter has the type the schema documents.

Litestar converts request bodies and query parameters with msgspec's
``strict=False``, so ``{"is_active": "false"}``, ``"0"`` or ``0`` would read as
``False``, ``{"stock": "5"}`` as ``5`` and ``?offset=1e3`` as ``1000``. A client
sending those has a bug we refuse (400 naming the field) rather than guess at.

`StrictInputMiddleware` runs after routing (it knows the handler) and before the
handler's arguments are parsed:

* Query parameters declared ``int`` must be written as integers (``-?[0-9]+``),
  ``bool`` ones as ``true`` or ``false``.
* A body declared as a msgspec Struct (``data: JSONBody[...]``) is decoded once
  more with ``strict=True``: JSON booleans for booleans, integers for integers,
  strings for strings. Decimal fields keep accepting a string or a number, as
  the schema documents. Malformed JSON is left to Litestar (its own 400).

What each handler needs checked is worked out once, on its first request.
"""

from __future__ import annotations

import re
import types
import typing
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import msgspec
from litestar.constants import RESERVED_KWARGS
from litestar.enums import ParamType
from litestar.params import ParameterKwarg

from shop._compat.msgspec import field_of, reason
from shop.errors import InvalidInput
from shop.ops.limits import replay

if TYPE_CHECKING:
    from litestar.handlers import BaseRouteHandler
    from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ["StrictInputMiddleware", "invalid_body", "strict_body"]

_INTEGER = re.compile(r"-?[0-9]+")
_BOOLEANS = frozenset({"true", "false"})
_PATH_PARAMETER = re.compile(r"{(\w+):")


def invalid_body(exc: msgspec.ValidationError) -> InvalidInput:
    """A 400 naming the field msgspec stopped at (``items[0].quantity``)."""
    message = str(exc)
    field = field_of(message)
    return InvalidInput(
        f"Invalid value for {field or 'the request body'}: {reason(message)}",
        errors=[{"field": field, "message": message, "source": "body"}],
    )


def strict_body(body: bytes, struct: type[Any]) -> None:
    """Raise `InvalidInput` unless ``body`` decodes strictly as ``struct`` (bad JSON passes)."""
    try:
        msgspec.json.decode(body, type=struct, strict=True)
    except msgspec.ValidationError as exc:
        raise invalid_body(exc) from None
    except msgspec.DecodeError:
        return  # malformed JSON: Litestar answers it with its own 400


def _scalar(annotation: Any) -> Any:
    """``int``, ``bool`` or something else, through ``Optional`` and ``Annotated``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar(inner[0]) if len(inner) == 1 else None
    return annotation


class _Plan(msgspec.Struct):
    integers: frozenset[str]
    booleans: frozenset[str]
    body: type[Any] | None


def _plan_for(handler: BaseRouteHandler) -> _Plan:
    integers: set[str] = set()
    booleans: set[str] = set()
    body: type[Any] | None = None
    dependencies = set(handler.resolve_dependencies())
    path_names = {name for path in handler.paths for name in _PATH_PARAMETER.findall(path)}
    for name, field in handler.parsed_fn_signature.parameters.items():
        if name == "data":
            candidate = _scalar(field.annotation)
            if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
                body = candidate
            continue
        if name in RESERVED_KWARGS or name in dependencies or field.is_di_field:
            continue
        kwarg = field.kwarg_definition
        if isinstance(kwarg, ParameterKwarg) and kwarg.param_type is not ParamType.QUERY:
            continue
        if name in path_names:
            continue
        key = (kwarg.name or kwarg.query or name) if isinstance(kwarg, ParameterKwarg) else name
        scalar = _scalar(field.annotation)
        if scalar is bool:
            booleans.add(key)
        elif scalar is int:
            integers.add(key)
    return _Plan(frozenset(integers), frozenset(booleans), body)


def _check_query(plan: _Plan, query_string: bytes) -> None:
    errors = []
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        # Worded as Litestar words its own query errors.
        if key in plan.integers and not _INTEGER.fullmatch(value):
            errors.append({"field": key, "message": "Expected `int`, got `str`", "source": "query"})
        elif key in plan.booleans and value not in _BOOLEANS:
            errors.append(
                {"field": key, "message": "Expected `true` or `false`", "source": "query"}
            )
    if errors:
        names = ", ".join(sorted({e["field"] for e in errors}))
        raise InvalidInput(f"Invalid value for {names}", errors=errors)


class StrictInputMiddleware:
    """Refuse loosely typed query parameters and bodies before Litestar coerces them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._plan: _Plan | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plan = self._plan
        if plan is None:
            plan = self._plan = _plan_for(scope["route_handler"])
        if (plan.integers or plan.booleans) and scope.get("query_string"):
            _check_query(plan, scope["query_string"])
        if plan.body is not None and scope.get("method") in {"POST", "PUT", "PATCH"}:
            body = await _read(receive)
            strict_body(body, plan.body)
            receive = replay(body, receive)
        await self.app(scope, receive, send)


async def _read(receive: Receive) -> bytes:
    """The body; `shop.ops.limits` has already bounded its size."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
