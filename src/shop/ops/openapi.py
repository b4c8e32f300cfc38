"""Make the generated OpenAPI document tell the whole truth about errors and bodies.

Litestar documents what each handler declares. Some answers come from layers
below every handler, and schema-driven fuzzing (tests/hardening/test_fuzzing.py)
showed them as undocumented. This pass adds them once, for every operation:

* 400 problem details wherever the operation takes parameters or a body
  (malformed JSON, wrong types, out-of-range path ids are refused before the
  handler runs);
* 401 wherever the operation needs a bearer token (the auth middleware);
* 414 wherever it takes parameters (a URL longer than ``HTTP_MAX_URL_BYTES``,
  `shop.ops.limits`);
* 413 and 415 wherever it takes a body (``MAX_BODY_BYTES``, a body not declared
  as JSON; `shop.ops.limits`);
* 503 everywhere except liveness (the database is unavailable, `shop.errors`);
* the ``Problem`` schema, `shop.errors.Problem` (the one definition of the body);
* and Litestar's own error entries, documented as ``application/json``, are
  corrected to ``application/problem+json`` (what `shop.errors` sends).

It also marks request schemas of msgspec Structs declared with
``forbid_unknown_fields=True`` as ``additionalProperties: false``, since the
server rejects unknown fields there.

Declared entries are never overwritten; the pass only fills gaps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin

from shop.errors import Problem

__all__ = ["CompleteJsonRenderPlugin"]

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
_NO_DB = {"/health/live", "/api"}

_DESCRIPTIONS = {
    "400": "Invalid input (malformed JSON, wrong types, out of range); `errors` lists the fields",
    "401": "Missing, invalid or expired access token",
    "413": "Request body too large",
    "414": "The URL (path and query) is longer than HTTP_MAX_URL_BYTES",
    "415": "The body is not declared as JSON (send Content-Type: application/json)",
    "503": "A dependency (the database) is unavailable; retry after Retry-After seconds",
}


def _problem(status: str) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _errors_are_problems(status: str, response: dict[str, Any]) -> None:
    """Litestar documents its own 400 as application/json; every error we send is problem+json."""
    if not status.startswith(("4", "5")):
        return
    content = response.get("content")
    if isinstance(content, dict) and set(content) == {"application/json"}:
        response["content"] = {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in _METHODS and isinstance(operation, dict):
                yield path, operation


def _needs_auth(operation: dict[str, Any], schema: dict[str, Any]) -> bool:
    security = operation.get("security", schema.get("security", []))
    return bool(security) and all(requirement for requirement in security)


def _strict_structs() -> set[str]:
    names: set[str] = set()
    stack = list(msgspec.Struct.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if getattr(cls.__struct_config__, "forbid_unknown_fields", False):
            names.add(cls.__name__)
    return names


def _complete(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    # Litestar already documents `Problem` from the handlers that declare it
    # (`shop.errors.problem_responses`); an app where none does gets it from here.
    _, problem_components = msgspec.json.schema_components(
        (Problem,), ref_template="#/components/schemas/{name}"
    )
    for name, component in problem_components.items():
        components.setdefault(name, component)
    for name in _strict_structs():
        component = components.get(name)
        if isinstance(component, dict) and component.get("type") == "object":
            component.setdefault("additionalProperties", False)
    for path, operation in _operations(schema):
        responses = operation.setdefault("responses", {})
        wanted = []
        if operation.get("parameters") or operation.get("requestBody"):
            wanted.append("400")
        if operation.get("parameters"):
            wanted.append("414")
        if _needs_auth(operation, schema):
            wanted.append("401")
        if operation.get("requestBody"):
            wanted += ["413", "415"]
        if path not in _NO_DB:
            wanted.append("503")
        for status in wanted:
            responses.setdefault(status, _problem(status))
        for status, response in responses.items():
            _errors_are_problems(status, response)
    return schema


class CompleteJsonRenderPlugin(JsonRenderPlugin):
    """Serves the OpenAPI JSON after the pass above (run once; the document is cached)."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if not openapi_schema.get("x-shop-completed"):
            _complete(openapi_schema)
            openapi_schema["x-shop-completed"] = True
        return super().render(request, openapi_schema)
