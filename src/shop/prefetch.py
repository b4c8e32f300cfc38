"""A route's cache lookup, read in the same memcached round trip as the caller's snapshot.

A cached read needs two independent memcached reads: the caller's snapshot
(authentication, `shop.accounts.security`) and the route's entry (its
``before_request`` hook). One after the other, that is two round trips.
`MemcachedCache` sends the gets of one event-loop turn as one command, so the
authentication middleware, once the token is verified, starts the route's
lookup (the coroutine function named in the handler's ``opt`` under
`PREFETCH`) just before it reads the snapshot, and both ride one ``get``.

The hook takes the result with `prefetched` and decides exactly as it would
have without it: the lookup only reads, and nothing is served before the
caller is authenticated and the hook has run its checks (an order's owner,
for one). A request that fails authentication drops the result; a route
without a prefetch, or a request that did not start one, looks up in the hook.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from litestar.connection import ASGIConnection

__all__ = ["PREFETCH", "prefetched", "start_prefetch"]

PREFETCH = "shop_prefetch"
"""Key in a route handler's ``opt``: ``async (connection) -> result``."""

_PENDING = "shop.prefetch.pending"

T = TypeVar("T")
Connection = ASGIConnection[Any, Any, Any, Any]


def start_prefetch(connection: Connection) -> None:
    """Start the route's lookup, if it has one; it runs from the next event-loop turn."""
    if connection.scope.get("method") not in ("GET", "HEAD"):
        return
    lookup = connection.scope["route_handler"].opt.get(PREFETCH)
    if lookup is None:
        return
    task = asyncio.ensure_future(lookup(connection))
    task.add_done_callback(_consume)
    connection.scope["state"][_PENDING] = task


async def prefetched(connection: Connection, lookup: Callable[[Connection], Awaitable[T]]) -> T:
    """The result of the lookup started with the snapshot read, else ``lookup`` run now."""
    task = connection.scope["state"].pop(_PENDING, None)
    if task is None:
        return await lookup(connection)
    return cast("T", await task)


def _consume(task: asyncio.Future[Any]) -> None:
    """A dropped result (authentication failed) must not log "exception never retrieved"."""
    with contextlib.suppress(asyncio.CancelledError):
        task.exception()
