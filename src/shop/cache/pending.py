"""Writes memcached has not taken yet, and what this instance does until it has.

A version bump, a delete or a writer's `Cache.put_newer` that fails (a server
down, a timeout) is not dropped like other writes: it is remembered here.
Until it has been delivered, this instance reads what it concerns as a miss
(a bumped namespace, a deleted key, a key whose newer figure is waiting), and
`shop.cache.memcached.MemcachedCache` keeps delivering it in the background,
so stale entries stop being served as soon as memcached answers again. What
waits longer than the longest TTL is moot (what it invalidates has expired)
and forgotten.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping

__all__ = ["FORGET_AFTER", "MAX_PUTS", "Pending"]

logger = logging.getLogger("shop.cache")

FORGET_AFTER = 600.0
"""A pending write older than the longest TTL is moot: what it invalidates has expired."""
MAX_PUTS = 100_000
"""Undelivered writer puts kept (about 100 bytes each); beyond, the oldest are dropped."""

Entries = Mapping[str, tuple[int, bytes]]
PutNewer = Callable[[dict[str, tuple[int, bytes]], int], Awaitable[list[str]]]


class Pending:
    """The writes of one cache object not delivered yet."""

    def __init__(self) -> None:
        self.bumps: dict[str, float] = {}
        """Namespace -> since when its bump waits."""
        self.deletes: dict[str, float] = {}
        """Key -> since when its delete waits."""
        self.puts: dict[str, tuple[int, bytes, int, float]] = {}
        """Key -> ``(stamp, value, ttl, since)`` of the newest put waiting."""
        self._dropped_warned = -math.inf

    def __bool__(self) -> bool:
        return bool(self.bumps or self.deletes or self.puts)

    def hides(self, key: str) -> bool:
        """Whether a read of ``key`` must miss: a delete or a newer figure waits."""
        return key in self.deletes or key in self.puts

    def bump(self, namespace: str) -> None:
        self.bumps.setdefault(namespace, time.monotonic())

    def delete(self, key: str) -> None:
        self.deletes.setdefault(key, time.monotonic())

    def put(self, entries: Entries, undelivered: list[str], ttl: int) -> None:
        """Remember the ``undelivered`` keys of ``entries``; forget the waiting puts
        the delivered ones supersede."""
        now = time.monotonic()
        for key in undelivered:
            stamp, value = entries[key]
            held = self.puts.get(key)
            if held is None or held[0] < stamp:
                self.puts.pop(key, None)  # re-inserted: the newest last
                self.puts[key] = (stamp, value, ttl, now)
        while len(self.puts) > MAX_PUTS:
            # The oldest goes (what it replaces on a server that restarted is gone
            # anyway); logged, as its server could serve an older figure if it
            # comes back without restarting before the entry expires.
            del self.puts[next(iter(self.puts))]
            self._warn_dropped()
        if self.puts:
            missed = set(undelivered)
            for key, (stamp, _) in entries.items():
                held = self.puts.get(key)
                if key not in missed and held is not None and held[0] <= stamp:
                    del self.puts[key]

    async def deliver(
        self,
        incr: Callable[[str], Awaitable[bool]],
        delete: Callable[[str], Awaitable[bool]],
        put_newer: PutNewer,
        *,
        may_put: bool,
    ) -> None:
        """Try every pending write once (the callables are not forced through an
        open circuit: while memcached is down, this must not pay a timeout each time).
        ``may_put``: some server that holds keys may be called."""
        now = time.monotonic()
        for namespace, since in list(self.bumps.items()):
            if now - since > FORGET_AFTER or await incr(namespace):
                self.bumps.pop(namespace, None)
        for key, since in list(self.deletes.items()):
            if now - since > FORGET_AFTER or await delete(key):
                self.deletes.pop(key, None)
        if self.puts and may_put:
            due = {key: held for key, held in self.puts.items() if now - held[3] <= FORGET_AFTER}
            by_ttl: dict[int, dict[str, tuple[int, bytes]]] = {}
            for key, (stamp, value, ttl, _) in due.items():
                by_ttl.setdefault(ttl, {})[key] = (stamp, value)
            undelivered: set[str] = set()
            for ttl, group in by_ttl.items():
                undelivered.update(await put_newer(group, ttl))
            for key, held in list(self.puts.items()):
                # Delivered (and not replaced by a newer put meanwhile), or moot.
                if key not in undelivered and due.get(key, held) is held:
                    del self.puts[key]

    def _warn_dropped(self) -> None:
        now = time.monotonic()
        if now - self._dropped_warned >= 60:
            self._dropped_warned = now
            logger.warning(
                "memcached unreachable for long: over %d stock figures wait to be stored; "
                "the oldest are dropped",
                MAX_PUTS,
            )
