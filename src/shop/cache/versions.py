"""A namespace's version counter as `MemcachedCache` reads, creates and bumps it.

A part of `shop.cache.memcached.MemcachedCache` (a mixin: it works on that
class's servers, prefix and pending writes, declared below), kept apart
because it is one protocol of its own:

* Reading. The version seen last is remembered per namespace
  (``_last_version``); `lookup` reads the counter in the same ``get`` as the
  entry and only comes here when it moved. A counter nobody holds is created
  from the clock (`base.initial_version`), above any version this instance
  saw, so an entry cached under an old version is never read again.
* Copies. A counter lives on two servers (`shop.cache.replicas`); a read takes
  the highest copy and raises the others in the background.
* Bumps. The bumps of one event-loop turn share one ``incr`` of every
  reachable copy; one that cannot be delivered stays pending
  (`shop.cache.pending`), and reads of its namespace miss until it lands.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from shop.cache import replicas
from shop.cache.base import CacheStats, initial_version, version_key
from shop.cache.batch import Found
from shop.cache.node import Node
from shop.cache.pending import Pending
from shop.cache.ring import Ring

__all__ = ["Versions"]

logger = logging.getLogger("shop.cache")


class Versions:
    """Version counters: read, created, copied and bumped (see the module)."""

    # What the cache class provides.
    stats: CacheStats
    _ring: Ring[Node]
    _pending: Pending
    _last_version: dict[str, int]
    _bumps: dict[str, asyncio.Future[None]]
    """The bump of each namespace that callers of this turn can still join."""
    _repairs: dict[str, asyncio.Task[None]]

    async def _get_now(self, keys: list[str]) -> Found:
        raise NotImplementedError

    async def _ready(self) -> bool:
        raise NotImplementedError

    def _wire(self, key: str) -> bytes:
        raise NotImplementedError

    def _start_retrying(self) -> None:
        raise NotImplementedError

    async def _settled(self, pending: Mapping[str, object], item: str) -> bool:
        raise NotImplementedError

    async def version(self, namespace: str) -> int:
        if not await self._settled(self._pending.bumps, namespace):
            return 0
        return await self._current_version(namespace) or 0

    async def _current_version(self, namespace: str) -> int | None:
        name = version_key(namespace)
        found = await self._get_now([name])
        if name not in found:
            return None
        raw = found[name]
        if raw is None:
            # First use (or every copy is gone): create the counter. If another
            # instance created it first, `add` fails and we read theirs.
            initial = initial_version(self._last_version.get(namespace, 0))
            if not await self._add_counter(name, initial):
                found = await self._get_now([name])
                raw = found.get(name)
                if raw is None:
                    return None
            else:
                raw = str(initial).encode()
        return self._parse_version(namespace, raw)

    async def _add_counter(self, name: str, initial: int) -> bool:
        """``add`` the counter on each of its servers; True when every one took this value."""
        if not await self._ready():
            return False
        return await replicas.add_everywhere(self._ring.replicas(name), self._wire(name), initial)

    def _parse_version(self, namespace: str, raw: bytes) -> int | None:
        if not raw.isdigit():
            self.stats.errors += 1
            logger.warning("memcached holds a version of %s that is no number: %r", namespace, raw)
            return None
        version = int(raw)
        self._last_version[namespace] = version
        return version

    def _highest(self, name: str, copies: list[bytes | None]) -> bytes | None:
        """The version a counter's answering copies agree on: the highest; raise the others."""
        top, agreed = replicas.highest(copies)
        if top is None:
            return None
        if not agreed:  # a copy that did not answer waits for its turn
            self._repair(name, top)
        return str(top).encode()

    def _repair(self, name: str, highest: int) -> None:
        """Raise every copy of counter ``name`` below ``highest`` to it, in the background."""
        running = self._repairs.get(name)
        if running is not None and not running.done():
            return
        self._repairs[name] = asyncio.get_running_loop().create_task(self._raise(name, highest))

    async def _raise(self, name: str, highest: int) -> None:
        await replicas.raise_copies(self._ring.replicas(name), self._wire(name), highest)

    async def bump(self, namespace: str) -> None:
        """Bump ``namespace``'s version; shared by the callers of one event-loop turn.

        Under a burst of orders several requests of a worker commit in the same
        turn and each would send its own ``incr``. The first caller lets the
        loop run one turn, so the others join, then sends one ``incr`` for all:
        every caller committed before asking, so one increment sent afterwards
        invalidates what each of them wrote. A caller arriving once that
        ``incr`` may be on the wire starts a new one. Should the shared ``incr``
        fail or be cut off, the bump stays pending (reads of the namespace miss
        until it lands), exactly as for one caller.
        """
        self.stats.bumps += 1
        shared = self._bumps.get(namespace)
        if shared is not None:
            await asyncio.shield(shared)
            return
        done = self._bumps[namespace] = asyncio.get_running_loop().create_future()
        delivered = False
        try:
            try:
                await asyncio.sleep(0)  # the other bumps of this turn join this one
            finally:
                self._bumps.pop(namespace, None)  # from here on, this incr may be on its way
            delivered = await self._incr(namespace)
        finally:
            if not delivered:
                self._pending.bump(namespace)
                self._start_retrying()
            done.set_result(None)

    async def _incr(self, namespace: str, *, force: bool = True) -> bool:
        """Increment every reachable copy of the counter; True when one moved.

        A copy on a server whose circuit is open is left out while another can
        be asked (a bump must not pay a dead server's timeout each time). A
        copy that was left out or failed is lower than the one that moved when
        it answers again; reads take the highest copy and raise the others.
        """
        if not await self._ready():
            return False
        name = version_key(namespace)
        copies = self._ring.replicas(name)
        targets = [node for node in copies if node.may_call()] or (list(copies) if force else [])
        if not targets:
            return False
        wire = self._wire(name)
        moved = await asyncio.gather(*(replicas.incr_on(node, wire, force) for node in targets))
        return any(moved)
