"""Errors as classes, and the one place that turns any error into RFC 9457 problem details.

A domain error subclasses `ShopError`; its docstring is the default ``detail``
and its class attributes give the HTTP status and title. Services raise them;
`problem_handler` renders them. Framework exceptions (404, 405, validation)
and database outages go through the same handler, so every error a client sees
is ``application/problem+json`` with ``status``, ``title`` and ``detail``, and
validation errors list the failing fields under ``errors``.

One function builds every problem body (`problem_body`, also used by the ASGI
layers that answer before Litestar: `shop.ops.middleware`, `shop.ops.limits`)
from one `Problem` Struct, which is also the OpenAPI schema of every error
response, extension members (``errors``, ``allowed``, ``current``,
``shortages``, ...) included: a member that is not declared there cannot be
sent. Litestar's problem-details plugin is not used: it renders only its own
``ProblemDetailsException``, while this handler renders every exception,
framework errors and database outages included.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import msgspec
from asyncpg import exceptions as asyncpg_exceptions
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shop._compat.msgspec import field_of, names_a_field

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "Problem",
    "ShopError",
    "Unauthorized",
    "exception_handlers",
    "problem_body",
    "problem_response",
    "problem_responses",
]

logger = logging.getLogger("shop.errors")

PROBLEM_JSON = "application/problem+json"


class ShopError(Exception):
    """The request could not be processed."""

    status_code: int = 400
    title: str | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.detail = detail or (self.__doc__ or "").strip()
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.detail)


class InvalidInput(ShopError):
    """The request is invalid."""

    status_code = 400


class Unauthorized(ShopError):
    """Authentication credentials were missing or invalid."""

    status_code = 401

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(ShopError):
    """You do not have permission to perform this action."""

    status_code = 403


class NotFound(ShopError):
    """Not found."""

    status_code = 404


class Conflict(ShopError):
    """The request conflicts with the current state of the resource."""

    status_code = 409


class Unprocessable(ShopError):
    """The request is well-formed but cannot be processed."""

    status_code = 422


class TooManyRequests(ShopError):
    """Too many requests; try again later."""

    status_code = 429


class ProblemField(msgspec.Struct):
    """One failing input: the field (``items[0].quantity``; null for the whole body) and why."""

    field: str | None
    message: str
    source: str | None = None
    """Where the field was: ``body``, ``query``, ``path`` or ``header``."""


class Shortage(msgspec.Struct):
    """A product the order asked more of than is in stock."""

    product_id: int
    name: str
    requested: int
    available: int


class Problem(msgspec.Struct):
    """RFC 9457 problem details, the body of every error response.

    Besides the standard members, some errors carry extension members:
    ``errors`` (400: the failing fields), ``allowed`` and ``current`` (409 on
    an order status move: the statuses the caller may move the order to, and
    its status now), ``shortages`` (409 at checkout), ``minimum`` and ``total``
    (400 at checkout: the minimum order amount and the basket's total, money
    strings), ``product_id`` (404 of a product) and ``retry_after`` (429:
    seconds, as in the Retry-After header).
    """

    type: str
    title: str
    status: int
    detail: str
    instance: str | msgspec.UnsetType = msgspec.UNSET
    errors: list[ProblemField] | msgspec.UnsetType = msgspec.UNSET
    allowed: list[str] | msgspec.UnsetType = msgspec.UNSET
    current: str | msgspec.UnsetType = msgspec.UNSET
    shortages: list[Shortage] | msgspec.UnsetType = msgspec.UNSET
    minimum: str | msgspec.UnsetType = msgspec.UNSET
    total: str | msgspec.UnsetType = msgspec.UNSET
    product_id: int | msgspec.UnsetType = msgspec.UNSET
    retry_after: int | msgspec.UnsetType = msgspec.UNSET


_DEFAULT_DESCRIPTIONS = {
    400: "Invalid input; `errors` lists the failing fields",
    401: "Missing, invalid or expired access token",
    403: "Not allowed for this user",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Request body too large",
    422: "Well-formed but cannot be processed",
    429: "Too many requests; see Retry-After",
    503: "A dependency is unavailable; retry shortly",
}


def problem_responses(*codes: int, **descriptions: str) -> dict[int, ResponseSpec]:
    """OpenAPI ``responses=`` entries for the error statuses a handler can return.

    ``descriptions`` override the default text, keyed ``s409="..."``.
    """
    return {
        code: ResponseSpec(
            Problem,
            description=descriptions.get(f"s{code}", _DEFAULT_DESCRIPTIONS.get(code, _title(code))),
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for code in codes
    }


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    instance: str | None = None,
    **extra: Any,
) -> bytes:
    """The JSON of a problem; ``extra`` are `Problem`'s extension members (others: TypeError)."""
    members = {name: value for name, value in extra.items() if value is not None}
    if instance:
        members["instance"] = instance
    if errors:
        members["errors"] = errors  # dicts of ProblemField's shape, encoded as they are
    problem = Problem(
        type="about:blank", title=title or _title(status), status=status, detail=detail, **members
    )
    return msgspec.json.encode(problem)


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
    **extra: Any,
) -> Response[bytes]:
    return Response(
        content=problem_body(
            status, detail, title=title, errors=errors, instance=instance, **extra
        ),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _validation_errors(extra: Any) -> list[dict[str, Any]]:
    errors = []
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, dict):
                field = item.get("key") or item.get("field") or ""
                message = str(item.get("message", ""))
                source = item.get("source")
                # Litestar's key is the object holding a body field ("items[0]", or
                # "data" for the whole body); msgspec's message names the field itself.
                if not field or field == "data" or names_a_field(message):
                    field = field_of(message, "" if field == "data" else field) or field
                entry = {"field": field or None, "message": message}
                if source:
                    entry["source"] = str(getattr(source, "value", source))
                errors.append(entry)
    elif isinstance(extra, dict):
        errors.extend({"field": str(k), "message": str(v)} for k, v in extra.items())
    return errors


def _handle_shop_error(request: Request[Any, Any, Any], exc: ShopError) -> Response[bytes]:
    return problem_response(
        exc.status_code,
        exc.detail,
        title=exc.title,
        errors=exc.errors,
        headers=exc.headers,
        instance=request.url.path,
        **exc.extra,
    )


def _handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    detail = exc.detail or _title(status)
    errors = None
    if isinstance(exc, ValidationException) or (status == 400 and exc.extra):
        errors = _validation_errors(exc.extra)
        if errors and isinstance(exc.extra, list):
            # Litestar's signature check lists the failing parameters in `extra`; its
            # detail only repeats the method and URL, so name the fields instead.
            fields = ", ".join(e["field"] for e in errors if e.get("field")) or "the request"
            detail = f"Invalid value for {fields}"
    if status == 404 and detail == _title(404):
        # No detail of its own (HTTPException falls back to the status phrase): say where.
        detail = f"No resource at {request.url.path}"
    if status == 405:
        detail = f"Method {request.method} is not allowed on {request.url.path}"
    headers = dict(exc.headers or {})
    return problem_response(
        status, detail, errors=errors, headers=headers, instance=request.url.path
    )


def _is_bad_value(exc: DBAPIError) -> bool:
    """A value the client sent that PostgreSQL cannot hold (SQLSTATE class 22, "data exception").

    Examples: an id above the int64 range in a path the handler did not bound,
    which asyncpg refuses while encoding (a client-side ``DataError``), or a
    numeric overflow reported by the server. Caused by input, so a 400, not a 500.
    """
    orig = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        sqlstate = str(getattr(candidate, "sqlstate", "") or "")
        if sqlstate.startswith("22"):
            return True
        if isinstance(candidate, asyncpg_exceptions.DataError):
            return True
    return False


def _handle_database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, DBAPIError) and _is_bad_value(exc):
        logger.info("refused a value the database cannot hold: %s", str(exc.orig)[:200])
        return problem_response(
            400, "A value in the request is out of range or malformed.", instance=request.url.path
        )
    if (
        isinstance(exc, DBAPIError)
        and not isinstance(exc, OperationalError | InterfaceError)
        and not exc.connection_invalidated
    ):
        return _handle_unexpected(request, exc)
    logger.warning("database unavailable: %s", exc.__class__.__name__)
    return problem_response(
        503,
        "The database is unavailable; try again shortly.",
        headers={"Retry-After": "2"},
        instance=request.url.path,
    )


def _sqlstate(exc: DBAPIError) -> str:
    orig = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        if sqlstate := str(getattr(candidate, "sqlstate", "") or ""):
            return sqlstate
    return ""


def _handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, OSError | ConnectionError | PoolTimeoutError):
        return _handle_database_error(request, exc)
    # advanced-alchemy re-raises SQLAlchemy errors as its own exceptions; judge the original.
    cause: BaseException | None = exc.__cause__
    while cause is not None:
        if isinstance(cause, DBAPIError):
            return _handle_database_error(request, cause)
        cause = cause.__cause__
    if isinstance(exc, DBAPIError) and _sqlstate(exc).startswith("23"):
        # A constraint the database enforces (unique, check, foreign key) refused a
        # concurrent change that the service's own checks let through.
        logger.info("constraint refused a change: %s", str(exc.orig)[:200])
        return problem_response(
            409,
            "The change conflicts with the current state; reload and retry.",
            instance=request.url.path,
        )
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(500, "An unexpected error occurred.", instance=request.url.path)


exception_handlers: ExceptionHandlersMap = {
    ShopError: _handle_shop_error,
    HTTPException: _handle_http_exception,
    OperationalError: _handle_database_error,
    InterfaceError: _handle_database_error,
    DBAPIError: _handle_database_error,
    PoolTimeoutError: _handle_database_error,
    Exception: _handle_unexpected,
}
