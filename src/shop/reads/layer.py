"""The engine of cached reads: one `CachedRead` per route, one hook, one read-through.

See the package's docstring (`shop.reads`) for how a read flows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.status_codes import HTTP_200_OK, HTTP_304_NOT_MODIFIED
from sqlalchemy.ext.asyncio import AsyncEngine

from shop.cache import Cache, Lookup
from shop.reads.flight import fill
from shop.reads.fresh import Figure, FreshFigures
from shop.settings import Settings

__all__ = [
    "CACHED_READ",
    "Built",
    "CachedRead",
    "Encoded",
    "etag_matches",
    "keep",
    "kept",
    "read_through",
    "respond",
    "serve_hit",
    "wanted",
]

E = TypeVar("E")

CACHED_READ = "shop_cached_read"
"""Key in a route handler's ``opt``: the route's `CachedRead`."""

_KEPT = "shop.reads.kept"

Connection = ASGIConnection[Any, Any, Any, Any]


class Encoded(NamedTuple):
    """A response body exactly as sent, with its ETag.

    The ETag is a hash of the body: the same content has the same tag across
    version bumps, so a client revalidating after an unrelated change still
    gets a 304. It is weak (``W/``) because gzip may re-encode the body.
    """

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Encoded:
        return cls(body, f'W/"{hashlib.blake2b(body, digest_size=12).hexdigest()}"')


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` against our ETag."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    ours = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == ours for tag in if_none_match.split(","))


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedRead(Generic[E]):
    """What a domain declares once per cached route; the engine does the rest.

    ``E`` is the decoded entry (what the cache holds, without fresh figures).
    """

    name: str
    """Names the read in this process's memory of the ids each key showed."""
    namespace: str
    """The version namespace: the key is ``<namespace>_v<version>_<suffix>``."""
    suffix: Callable[[Connection], str | None]
    """The key suffix from the request, before authentication finishes (cheap, never
    raises); None: nothing to look up (the handler answers, a 404 for one)."""
    decode: Callable[[bytes], E | None]
    """The entry from its bytes; None for bytes that are not one (read as a miss)."""
    figures: FreshFigures
    """Where the fresh figures the entry shows live."""
    shows: Callable[[E], Sequence[int]]
    """The ids of the fresh figures an entry shows."""
    render: Callable[[Any, E, Mapping[int, int]], bytes | Encoded | None]
    """The body: ``(context, entry, {id: figure})``, or the body with its ETag when the
    render can tell it more cheaply than a hash of the body; None: the entry cannot be
    served as it is (a product gone since), the handler answers instead."""
    entry_ttl: Callable[[Settings], int]
    figures_ttl: Callable[[Settings], int]
    context: Callable[[Connection], Any] | None = None
    """Checks run after authentication, before the entry is looked at (may raise a
    4xx); what it returns is ``render``'s context (the connection when None)."""
    check: Callable[[E, Any], None] | None = None
    """The access check of an entry for the caller (``connection.user``): raises to
    refuse (the order's owner). Runs before any byte of the entry is served."""
    ids_of: Callable[[str], Sequence[int]] | None = None
    """The figures' ids known from the suffix alone (a product detail); else the engine
    remembers, per suffix, the ids an entry showed last (`_Shown`)."""
    remember: int = 4096
    """How many suffixes' ids this process remembers for this read."""
    conditional: bool = False
    """Send an ETag and answer a matching ``If-None-Match`` with 304."""
    cache_control: str | None = None

    def more(self, suffix: str) -> list[str]:
        """The fresh figures' keys to read with the entry."""
        if self.ids_of is not None:
            return [self.figures.key(id_) for id_ in self.ids_of(suffix)]
        return _shown.keys(self.name, suffix)


class _Shown:
    """Per read and suffix, the ids an entry showed last and their figures' keys: read
    with the entry next time."""

    def __init__(self) -> None:
        self._keys: dict[str, dict[str, tuple[tuple[int, ...], list[str]]]] = {}

    def keys(self, name: str, suffix: str) -> list[str]:
        found = self._keys.get(name, {}).get(suffix)
        return [] if found is None else found[1]

    def put(self, read: CachedRead[Any], suffix: str, ids: Sequence[int]) -> list[str]:
        """Remember ``ids`` for ``suffix``; their figures' keys (the ones kept when the
        ids are the same as last time, the usual hit)."""
        if read.ids_of is not None:
            return [read.figures.key(id_) for id_ in ids]
        known = self._keys.setdefault(read.name, {})
        shown = tuple(ids)
        held = known.get(suffix)
        if held is not None and held[0] == shown:
            return held[1]
        if held is None and len(known) >= read.remember:
            known.pop(next(iter(known)))  # the oldest: dicts keep insertion order
        keys = [read.figures.key(id_) for id_ in shown]
        known[suffix] = (shown, keys)
        return keys


_shown = _Shown()


class _Kept(NamedTuple):
    suffix: str
    lookup: Lookup


# -- before the route: the lookup read with the caller's snapshot ------------------------


def wanted(connection: Connection) -> tuple[str, str, list[str]] | None:
    """``(namespace, suffix, more)`` the route will read for this request, if it is a
    cached read (GET and HEAD only): authentication reads it with the snapshot."""
    if connection.scope.get("method") not in ("GET", "HEAD"):
        return None
    read: CachedRead[Any] | None = connection.scope["route_handler"].opt.get(CACHED_READ)
    if read is None:
        return None
    suffix = read.suffix(connection)
    if suffix is None:
        return None
    return read.namespace, suffix, read.more(suffix)


def keep(connection: Connection, suffix: str, lookup: Lookup) -> None:
    """Keep the route's lookup (made with the snapshot) for the rest of the request."""
    connection.scope["state"][_KEPT] = _Kept(suffix, lookup)


def kept(connection: Connection) -> tuple[str, Lookup] | None:
    """``(suffix, lookup)`` of this request, once the hook has made or taken it."""
    found: _Kept | None = connection.scope["state"].get(_KEPT)
    return found


async def _lookup(connection: Connection, read: CachedRead[Any]) -> _Kept | None:
    found: _Kept | None = connection.scope["state"].get(_KEPT)
    if found is not None:
        return found
    suffix = read.suffix(connection)
    if suffix is None:
        return None
    cache: Cache = connection.app.state.cache
    found = _Kept(suffix, await cache.lookup(read.namespace, suffix, read.more(suffix)))
    connection.scope["state"][_KEPT] = found
    return found


# -- the hook: a hit answered before Litestar parses arguments ----------------------------


async def serve_hit(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """The one ``before_request`` hook of every cached read: answers a hit, after the
    read's checks (the request's own, then the entry's access check), before
    Litestar parses arguments and resolves dependencies. A miss falls through to the
    handler, which reads through (`read_through`) with the same lookup."""
    read: CachedRead[Any] = request.route_handler.opt[CACHED_READ]
    context = read.context(request) if read.context is not None else request
    found = await _lookup(request, read)
    if found is None or found.lookup.value is None:
        return None
    entry = read.decode(found.lookup.value)
    if entry is None:
        return None
    if read.check is not None:
        read.check(entry, request.user)
    state = request.app.state
    settings: Settings = state.settings
    ids = read.shows(entry)
    keys = _shown.put(read, found.suffix, ids)
    values = await read.figures.read(
        state.cache, state.engine, ids, read.figures_ttl(settings), found.lookup.more, keys
    )
    body = read.render(context, entry, values)
    if body is None:
        return None
    return respond(read, body, request.headers.get("if-none-match"))


def respond(
    read: CachedRead[Any], body: bytes | Encoded, if_none_match: str | None
) -> Response[Any]:
    """The response of a cached read (hit or miss): the body, with its ETag if the read
    is conditional (304 without a body when ``If-None-Match`` matches)."""
    if not read.conditional:
        content = body.body if isinstance(body, Encoded) else body
        return Response(content, status_code=HTTP_200_OK, media_type="application/json")
    encoded = body if isinstance(body, Encoded) else Encoded.of(body)
    headers = {"ETag": encoded.etag}
    if read.cache_control is not None:
        headers["Cache-Control"] = read.cache_control
    if etag_matches(if_none_match, encoded.etag):
        return Response(content=b"", status_code=HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(
        content=encoded.body,
        status_code=HTTP_200_OK,
        media_type="application/json",
        headers=headers,
    )


# -- the handler: a miss read through ------------------------------------------------------


class Built(NamedTuple, Generic[E]):
    """What a miss built from PostgreSQL."""

    raw: bytes
    """The entry's bytes, as stored."""
    entry: E
    values: Mapping[int, int]
    """Figures read with it (fresh: this very request read them); ids absent here are
    taken as the entry shows them."""
    publish: Sequence[Figure] = ()
    """Figures with their versions, worth publishing (a reader's fill)."""


async def read_through(
    read: CachedRead[E],
    cache: Cache,
    engine: AsyncEngine,
    settings: Settings,
    lookup: Lookup,
    build: Callable[[], Awaitable[Built[E]]],
    *,
    context: Any,
    user: Any,
    suffix: str,
    also: Lookup | None = None,
) -> bytes | Encoded | None:
    """The body from ``lookup``'s entry, else built once per key and process (`fill`)
    and stored under the version read before the build; then the access check, the
    fresh figures (those the build read, else their entries) and the render (its
    None is passed on).

    ``suffix``: the one the route looks up by (`CachedRead.suffix`), under which
    the ids the entry shows are remembered. ``also``: the route's own lookup when
    ``lookup`` is another key (a list's canonical query): the entry is stored
    under it too, so the hook answers the same request next time.
    """
    entry = read.decode(lookup.value) if lookup.value is not None else None
    raw = lookup.value
    values: Mapping[int, int] | None = None
    if entry is None or raw is None:
        built: list[Built[E]] = []

        async def build_one() -> bytes:
            built.append(await build())
            return built[-1].raw

        raw, built_here = await fill(cache, lookup, build_one, read.entry_ttl(settings))
        if built_here:  # read in this very request: fresh, and worth publishing
            entry, values = built[0].entry, built[0].values
            ttl = read.figures_ttl(settings)
            await read.figures.publish(cache, built[0].publish, ttl, fill=True)
        else:
            entry = read.decode(raw)
            if entry is None:  # cannot happen: the leader encoded it
                raise RuntimeError(f"undecodable {read.name} entry")
    if read.check is not None:
        read.check(entry, user)
    ids = read.shows(entry)
    keys = _shown.put(read, suffix, ids)
    if values is None:
        values = await read.figures.read(
            cache, engine, ids, read.figures_ttl(settings), lookup.more, keys
        )
    if also is not None and also.key is not None and also.key != lookup.key:
        await cache.set(also.key, raw, read.entry_ttl(settings))
    return read.render(context, entry, values)
