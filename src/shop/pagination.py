"""Lists as the Django app answered them: DRF's envelope, page numbers, counts that do not scan.

Every list (products, own orders, admin orders, webhook deliveries) answers
``{"count", "next", "previous", "results"}``:

* ``?page=N`` pages of `PAGE_SIZE` (DRF's ``PageNumberPagination``); ``next``
  and ``previous`` carry ``page``. A page past the end is 404, as DRF answers.
* ``?limit=&offset=`` is our extension (DRF's ``LimitOffsetPagination``);
  ``next`` and ``previous`` then carry ``limit`` and ``offset``. An offset past
  the end is an empty page, as DRF answers. ``page`` with ``offset`` is 400.
* ``next``/``previous`` are absolute URLs built from the request as it came in
  (its Host), at response time: a cached list holds no URL, so an entry filled
  through one host name is never served with another's links.
* ``count`` is exact while at most ``LIST_EXACT_COUNT_MAX`` rows match (default
  1,000, fifty pages): counting stops at that many rows plus one (`count_rows`), so it
  never scans a big table. The capped count is a column of the page's own
  statement (`with_capped_count`): page and count cost one round trip. Beyond it, ``count`` is PostgreSQL's estimate for
  the same query (its planner's row estimate, the ``EXPLAIN`` figure) and the
  envelope adds ``"count_is_estimate": true``. A process reuses the estimate of
  one query for `ESTIMATE_SECONDS` (it only moves with the table's statistics).

Whether there is a next page does not depend on the count: a page reads one
row more than it shows.

Every parameter of these lists is single-valued: a repeated one (``?ordering=
price&ordering=-price``) is refused with 400 naming it (`refuse_repeated`),
rather than silently taking one of the values (a cache key could otherwise
mean another query than the handler computed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Container, Sequence
from typing import Annotated, Any, Generic, NamedTuple, TypeVar
from urllib.parse import parse_qsl, urlencode

import msgspec
from litestar.connection import ASGIConnection
from litestar.params import Parameter
from sqlalchemy import Integer, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.selectable import ScalarSelect
from sqlalchemy.sql.visitors import InternalTraversal

from shop.errors import InvalidInput, NotFound
from shop.schemas import Page

__all__ = [
    "LIMIT_DESCRIPTION",
    "MAX_LIMIT",
    "OFFSET_DESCRIPTION",
    "PAGE_SIZE",
    "Count",
    "Explain",
    "InvalidPage",
    "Limit",
    "ListPage",
    "PageNumber",
    "Window",
    "capped_count",
    "count_rows",
    "encode_list",
    "from_page",
    "links",
    "list_page",
    "offset_parameter",
    "page_number",
    "refuse_repeated",
    "window",
    "with_capped_count",
]

PAGE_SIZE = 20
"""Items per ``?page=`` (the Django app's PAGE_SIZE), and the default ``limit``."""

T = TypeVar("T")

LIMIT_DESCRIPTION = (
    "Items per page with `offset` (our extension; default 20); with `page`, the page size"
)
OFFSET_DESCRIPTION = "Items to skip (our extension); not with `page`"
MAX_LIMIT = 100
"""The largest ``limit`` of every list."""

# The paging parameters of every list, declared once. A handler takes
# ``page: PageNumber = None``, ``limit: Limit = PAGE_SIZE`` and
# ``offset: Annotated[int, offset_parameter(MAX_OFFSET)] = 0``, then `window`.
# They stay handler parameters (not a Litestar dependency) so that
# `shop.ops.strict` sees them and refuses ``?limit=2e1`` like any other integer.
Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description=LIMIT_DESCRIPTION)]


def offset_parameter(max_offset: int) -> Any:
    """``offset``'s declaration for a list that serves rows up to ``max_offset`` deep.

    The ceiling is the list's own (pass the same to `window`): each domain says
    why its lists stop where they do, and the OpenAPI document shows it.
    """
    return Parameter(ge=0, le=max_offset, description=OFFSET_DESCRIPTION)


PageNumber = Annotated[
    int | None,
    Parameter(
        ge=1,
        le=2**31 - 1,
        description="Page number, 20 items per page (as the Django app); a page past the end is 404",
    ),
]

_encoder = msgspec.json.Encoder()


class InvalidPage(NotFound):
    """Invalid page."""


class ListPage(msgspec.Struct, Generic[T]):
    """DRF's list envelope; ``count_is_estimate`` is present (true) only when ``count`` is estimated."""

    count: int
    next: str | None
    previous: str | None
    results: list[T]
    count_is_estimate: bool | msgspec.UnsetType = msgspec.UNSET


class Window(NamedTuple):
    """The rows a request asks for; ``page`` is None in limit/offset mode."""

    limit: int
    offset: int
    page: int | None


class Count(NamedTuple):
    value: int
    estimate: bool


def window(
    *, page: int | None, limit: int, offset: int, given: Container[str], max_offset: int
) -> Window:
    """The window of ``?page=`` or ``?limit=&offset=``; ``given``: the parameter names sent.

    Page mode unless ``limit`` or ``offset`` is sent without ``page`` (so page 1
    when neither is). In page mode a ``limit`` sets the page size. A page deeper
    than ``max_offset`` rows is refused as DRF refuses a page it cannot serve (404).
    """
    if page is not None:
        if "offset" in given:
            raise InvalidInput(
                "Use either page or limit/offset, not both",
                errors=[{"field": "offset", "message": "not allowed with page", "source": "query"}],
            )
        start = (page - 1) * limit
        if start > max_offset:
            raise InvalidPage(
                f"Invalid page: pages beyond the first {max_offset} items are not served; "
                "narrow the filters instead."
            )
        return Window(limit, start, page)
    if "limit" not in given and "offset" not in given:
        return Window(limit, offset, 1)  # the Django app's default: page 1
    return Window(limit, offset, None)


def refuse_repeated(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, str]:
    """The query parameters; 400 naming the first one given more than once."""
    raw = connection.scope["query_string"]
    if not raw:
        return {}
    seen: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            raise InvalidInput(
                f"Invalid value for {name}: given more than once",
                errors=[
                    {"field": name, "message": "must be given at most once", "source": "query"}
                ],
            )
        seen[name] = value
    return seen


def page_number(params: dict[str, str]) -> int | None:
    """The page asked for by already validated parameters; None in limit/offset mode."""
    if "page" in params:
        return int(params["page"])
    if "limit" in params or "offset" in params:
        return None
    return 1


def links(
    connection: ASGIConnection[Any, Any, Any, Any], at: Window, has_next: bool
) -> tuple[str | None, str | None]:
    """``(next, previous)`` as absolute URLs, or None; DRF's rules for each mode."""
    url = connection.url
    # The path as the client sent it (with or without its trailing slash):
    # Litestar's routing drops the slash from ``scope["path"]``.
    raw_path = connection.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else url.path
    base = f"{url.scheme}://{url.netloc}{path}"
    query = dict(
        parse_qsl(connection.scope["query_string"].decode("latin-1"), keep_blank_values=True)
    )

    def to(changes: dict[str, int | None]) -> str:
        merged = {**query, **{k: str(v) for k, v in changes.items() if v is not None}}
        for name in [k for k, v in changes.items() if v is None]:
            merged.pop(name, None)
        return f"{base}?{urlencode(sorted(merged.items()))}" if merged else base

    if at.page is not None:
        following = to({"page": at.page + 1}) if has_next else None
        if at.page <= 1:
            return following, None
        return following, to({"page": at.page - 1 if at.page > 2 else None})
    following = to({"limit": at.limit, "offset": at.offset + at.limit}) if has_next else None
    if at.offset <= 0:
        return following, None
    before = at.offset - at.limit
    return following, to({"limit": at.limit, "offset": before if before > 0 else None})


def check_page(at: Window, shown: int) -> None:
    """A page past the end is 404 (DRF); page 1 of an empty list is an empty page."""
    if at.page is not None and at.page > 1 and shown == 0:
        raise InvalidPage("Invalid page.")


def list_page(
    connection: ASGIConnection[Any, Any, Any, Any],
    at: Window,
    count: Count,
    results: list[T],
    has_next: bool,
) -> ListPage[T]:
    """The envelope of a page (404 for a page past the end)."""
    check_page(at, len(results))
    following, previous = links(connection, at, has_next)
    return ListPage(
        count=count.value,
        next=following,
        previous=previous,
        results=results,
        count_is_estimate=True if count.estimate else msgspec.UNSET,
    )


def from_page(
    connection: ASGIConnection[Any, Any, Any, Any], at: Window, page: Page[T]
) -> ListPage[T]:
    """The envelope of a page a service returned."""
    count = Count(page.total, page.total_is_estimate)
    return list_page(connection, at, count, page.items, page.has_next)


def encode_list(
    connection: ASGIConnection[Any, Any, Any, Any],
    at: Window,
    count: Count,
    results: Sequence[Any],
    has_next: bool,
) -> bytes:
    """`list_page`, encoded as JSON."""
    return _encoder.encode(list_page(connection, at, count, list(results), has_next))


# -- counting ----------------------------------------------------------------------


class Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON) <select>``, compiled by SQLAlchemy with bound parameters.

    Cacheable like the statement it wraps (its cache key is the statement's), so an
    estimated count compiles its SQL once per shape, not once per request.
    """

    inherit_cache = True
    _traverse_internals = [("statement", InternalTraversal.dp_clauseelement)]
    # Its one result column (the plan) is not one of the statement's: nothing for a
    # result read through the compiled cache to map (SQLAlchemy asks, and the
    # default raises).
    _all_selected_columns: tuple[Any, ...] = ()

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


def capped_count(rows: Select[Any], threshold: int) -> ScalarSelect[int]:
    """How many rows ``rows`` selects, counting no further than ``threshold + 1``.

    A scalar subquery: added as a column to the page's own statement
    (`with_capped_count`), the count rides along with the page in one round
    trip. PostgreSQL runs it once, as an InitPlan, when the first row of the
    page is returned (never for an empty page).
    """
    cap = bindparam("count_cap", threshold + 1, type_=Integer)
    return select(func.count()).select_from(rows.limit(cap).subquery()).scalar_subquery()


def with_capped_count(page: Select[Any], rows: Select[Any], threshold: int) -> Select[Any]:
    """``page`` with a last column, the `capped_count` of ``rows`` (the same on every row)."""
    return page.add_columns(capped_count(rows, threshold).label("capped_count"))


async def count_rows(
    session: AsyncSession | async_scoped_session[AsyncSession],
    rows: Select[Any],
    threshold: int,
    seen: int | None = None,
) -> Count:
    """How many rows ``rows`` selects: exact up to ``threshold``, else PostgreSQL's estimate.

    The exact count reads at most ``threshold + 1`` rows (through whatever
    index serves the filter). Above that, the planner's estimate of the same
    query costs no scan at all; it is reported as at least ``threshold + 1``,
    since that many rows were seen. ``seen``: that capped count if it was read
    already, with the page (`with_capped_count`).
    """
    if seen is None:
        seen = int(await session.scalar(select(capped_count(rows, threshold))) or 0)
    if seen <= threshold:
        return Count(seen, False)
    return Count(max(await _estimate(session, rows), threshold + 1), True)


ESTIMATE_SECONDS = 30.0
"""How long a process reuses the planner's estimate of one query (same SQL, same values)."""
_ESTIMATES_KEPT = 1024

_estimates: dict[tuple[Any, ...], tuple[float, int]] = {}


async def _estimate(
    session: AsyncSession | async_scoped_session[AsyncSession], rows: Select[Any]
) -> int:
    """The planner's row estimate for ``rows`` (``EXPLAIN``), reused for `ESTIMATE_SECONDS`.

    The estimate comes from the table's statistics (``ANALYZE``, which autovacuum
    runs after a share of the table changed), so asking again within seconds gives
    the same figure for a round trip and a planning. Kept per database and per
    query (the statement's cache key and its values); a bounded map, emptied when full.
    """
    cache_key = rows._generate_cache_key()
    key = None
    if cache_key is not None:
        database = session.get_bind().engine.url.render_as_string(hide_password=True)
        values = tuple(param.effective_value for param in cache_key.bindparams)
        key = (database, cache_key.key, values)
        kept = _estimates.get(key)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
    plan = await session.scalar(Explain(rows))
    if isinstance(plan, str):
        plan = json.loads(plan)
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    if key is not None:
        if len(_estimates) >= _ESTIMATES_KEPT:
            _estimates.clear()
        _estimates[key] = (time.monotonic() + ESTIMATE_SECONDS, estimate)
    return estimate


def known_count(at: Window, shown: int, has_next: bool) -> Count | None:
    """The exact count when the page itself tells it (the last page, with rows), else None."""
    if has_next or (shown == 0 and at.offset > 0):
        return None
    return Count(at.offset + shown, False)
