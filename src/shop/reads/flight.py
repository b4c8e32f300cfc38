"""One build per key and process when a version moves (no stampede).

A version-keyed entry (`Cache.lookup`) dies for everyone at once when its
version is bumped: every request for that key then misses at the same moment
and, without care, each runs the same database query. `fill` lets the first
miss of a key (the leader) build the value while the concurrent misses of the
same key in the same process (followers) wait for the leader's result, up to
``wait`` seconds; a follower whose wait runs out, or whose leader failed, builds
the value itself. The key carries the version, so a follower never receives a
value built under an older version than the one it looked up.

The leader stores what it built under the lookup's key (the version read
*before* its database read, so a write committed meanwhile leaves it unread).

One `SingleFlight` per `Cache` object: two apps in one process (tests, two
shops on one memcached) never share a build.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from shop.cache import Cache, Lookup

__all__ = ["DEFAULT_WAIT", "SingleFlight", "fill", "single_flight"]

T = TypeVar("T")

DEFAULT_WAIT = 2.0
"""Seconds a follower waits for its leader before it queries the database itself."""


class SingleFlight:
    """Concurrent builds of one key in one process share the first one's result."""

    def __init__(self, wait: float = DEFAULT_WAIT) -> None:
        self.wait = wait
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self.shared = 0
        """Followers served by a leader's build (tests and metrics)."""

    async def run(self, key: str | None, build: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """``(value, built_here)``: this caller's build, or a concurrent leader's result."""
        if key is None:
            return await build(), True
        leader = self._inflight.get(key)
        if leader is not None:
            try:
                value: T = await asyncio.wait_for(asyncio.shield(leader), self.wait)
            except (TimeoutError, asyncio.CancelledError, Exception):
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this request itself is being cancelled
                # The leader failed or is slow: build it ourselves.
            else:
                self.shared += 1
                return value, False
            return await build(), True
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await build()
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        else:
            future.set_result(value)
            return value, True
        finally:
            self._inflight.pop(key, None)


_flights: weakref.WeakKeyDictionary[Cache, SingleFlight] = weakref.WeakKeyDictionary()


def single_flight(cache: Cache) -> SingleFlight:
    """The `SingleFlight` of ``cache`` (made on first use)."""
    flight = _flights.get(cache)
    if flight is None:
        flight = _flights[cache] = SingleFlight()
    return flight


async def fill(
    cache: Cache, lookup: Lookup, build: Callable[[], Awaitable[bytes]], ttl: int
) -> tuple[bytes, bool]:
    """A missed entry: built once per key and process, stored under ``lookup.key``.

    ``(value, built_here)``; ``built_here`` is False when a concurrent leader built it.
    """

    async def build_and_store() -> bytes:
        value = await build()
        if lookup.key is not None:
            await cache.set(lookup.key, value, ttl)
        return value

    return await single_flight(cache).run(lookup.key, build_and_store)
