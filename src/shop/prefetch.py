"""A route's cache lookup, read in the same memcached round trip as the caller's snapshot.

A cached read needs two independent memcached reads: the caller's snapshot
(authentication, `shop.accounts.security`) and the route's entry (its
``before_request`` hook). One after the other, that is two round trips. A
route names what it will look up with a plain function in its handler's
``opt`` under `PREFETCH` (``connection -> (namespace, suffix)`` or None), and
authentication, once the token is verified, reads the snapshot and that entry
with one `Cache.get_and_lookup` and leaves the `Lookup` in the scope.

The hook takes it with `prefetched` and decides exactly as it would have
without it: nothing is served before the caller is authenticated and the hook
has run its checks (an order's owner, for one). A request that fails
authentication drops the lookup; a route without a prefetch, or a request
whose authentication did not read one, looks up in the hook. On a miss the
handler reuses the same lookup (`lookup_of`) to store what it builds: its
version was read before the handler's database read, which is what makes
storing under it safe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from litestar.connection import ASGIConnection

from shop.cache import Cache, Lookup

__all__ = ["PREFETCH", "LookupSpec", "Wanted", "keep", "lookup_of", "prefetched", "wanted"]

PREFETCH = "shop_prefetch"
"""Key in a route handler's ``opt``: a `LookupSpec`."""

_RESULT = "shop.prefetch.lookup"

Connection = ASGIConnection[Any, Any, Any, Any]
Wanted = tuple[str, str] | tuple[str, str, Sequence[str]]
"""``(namespace, suffix)``, optionally with plain keys read along (`Cache.lookup`'s ``more``)."""
LookupSpec = Callable[[Connection], Wanted | None]
"""What a route looks up for a request, or None for nothing."""


def wanted(connection: Connection) -> Wanted | None:
    """The route's lookup for this request, if it declares one (GET and HEAD only)."""
    if connection.scope.get("method") not in ("GET", "HEAD"):
        return None
    spec: LookupSpec | None = connection.scope["route_handler"].opt.get(PREFETCH)
    return None if spec is None else spec(connection)


def keep(connection: Connection, lookup: Lookup) -> None:
    """Keep the route's lookup for the rest of the request (hook, then handler)."""
    connection.scope["state"][_RESULT] = lookup


def lookup_of(connection: Connection) -> Lookup | None:
    """The route's lookup of this request, once the hook has made or taken it."""
    found: Lookup | None = connection.scope["state"].get(_RESULT)
    return found


async def prefetched(connection: Connection, spec: LookupSpec) -> Lookup | None:
    """The lookup read with the snapshot, else the route's lookup done now and kept
    (None: nothing to look up)."""
    found = lookup_of(connection)
    if found is not None:
        return found
    wanted_now = spec(connection)
    if wanted_now is None:
        return None
    cache: Cache = connection.app.state.cache
    found = await cache.lookup(*wanted_now)
    keep(connection, found)
    return found
