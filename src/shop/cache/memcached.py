"""`MemcachedCache`: the cache on one memcached server or a pool of them.

Reads. `lookup` usually costs one round trip: it asks for the version counter
and the entry under the version it saw last, in one ``get``; only when the
version moved does it need a second ``get`` (`shop.cache.versions`). The gets
of one event-loop turn are shared (`shop.cache.batch`): one multi-key ``get``
per server, sent concurrently.

Servers. Keys are spread by rendezvous hashing (`shop.cache.ring`); each
server has its own connections, timeout and circuit breaker
(`shop.cache.node`). A server that is down costs only its share of keys: they
miss (reads) or are dropped (writes); nothing fails. Version counters are the
exception: each lives on two servers (`shop.cache.replicas`), so a namespace
stays cacheable while one of them is down, and a server that comes back never
brings back an old version.

Every key on the wire starts with a prefix naming the database
(`shop.cache.prefix`). A version bump, a delete or a writer's `put_newer`
that fails is remembered (`shop.cache.pending`): this instance reads what it
concerns as a miss until it has been delivered. Known limits: another API
instance that can still reach a server while this one cannot may serve
entries older than a bump this instance failed to deliver, until the retry
lands or the entries expire (300 s products, 60 s orders); and a counter whose
two copies disagree (just after one came back, before a read raised it) could
show the lower value if the higher copy's server failed in that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from shop._compat.aiomcache import Client
from shop.cache import stamped_puts
from shop.cache.base import (
    Cache,
    CacheStats,
    KeyPrefix,
    Lookup,
    make_key,
    version_key,
)
from shop.cache.batch import Found, SharedGets
from shop.cache.node import Node
from shop.cache.pending import Pending
from shop.cache.prefix import WirePrefix
from shop.cache.ring import Ring
from shop.cache.versions import Versions

__all__ = ["MemcachedCache"]

logger = logging.getLogger("shop.cache")

_CIRCUIT_SECONDS = 1.0
_RETRY_EVERY = 0.25
_VERSION = version_key("")
"""Every version counter's key starts with this; they are the replicated keys."""

T = TypeVar("T")


class MemcachedCache(Versions, Cache):
    """memcached through aiomcache, plus the timeouts, circuit breakers and retries it lacks.

    ``host``/``port``: the first server; ``more_servers``: the others (see `of`).
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        pool_size: int = 16,
        circuit_seconds: float = _CIRCUIT_SECONDS,
        *,
        key_prefix: KeyPrefix = "",
        more_servers: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.stats = CacheStats()
        nodes = [
            Node(
                server_host,
                server_port,
                timeout=timeout,
                pool_size=pool_size,
                circuit_seconds=circuit_seconds,
                stats=self.stats,
            )
            for server_host, server_port in [(host, port), *more_servers]
        ]
        self._ring = Ring(nodes, [node.name for node in nodes])
        self._single = nodes[0] if len(nodes) == 1 else None
        """The server, when there is one: no routing, no replica merging."""
        self._keys = WirePrefix(key_prefix, self.stats)
        self._last_version: dict[str, int] = {}
        self._pending = Pending()
        self._retry_task: asyncio.Task[None] | None = None
        self._repairs: dict[str, asyncio.Task[None]] = {}
        self._gets = SharedGets(self._get_now)
        self._bumps: dict[str, asyncio.Future[None]] = {}
        """The bump of each namespace that callers of this turn can still join."""

    @classmethod
    def of(
        cls,
        servers: Sequence[tuple[str, int]],
        timeout: float,
        *,
        pool_size: int = 16,
        circuit_seconds: float = _CIRCUIT_SECONDS,
        key_prefix: KeyPrefix = "",
    ) -> MemcachedCache:
        """A cache over ``servers`` (``MEMCACHED_URL``'s list, in any order: placement
        depends on the names only)."""
        (host, port), *more = servers
        return cls(
            host,
            port,
            timeout,
            pool_size,
            circuit_seconds,
            key_prefix=key_prefix,
            more_servers=more,
        )

    # -- health --------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return all(node.healthy for node in self._ring.nodes)

    @property
    def pending(self) -> Pending:
        """The writes memcached has not taken yet (`shop.cache.pending`)."""
        return self._pending

    @property
    def servers_down(self) -> list[str]:
        """``host:port`` of each server whose circuit is open."""
        return [node.name for node in self._ring.nodes if not node.healthy]

    # -- keys on the wire ------------------------------------------------------------

    async def _ready(self) -> bool:
        """Whether calls may go out: the key prefix is known (`shop.cache.prefix`)."""
        return await self._keys.ready()

    def _wire(self, key: str) -> bytes:
        return self._keys.wire(key)

    async def _on_owner(
        self,
        key: str,
        what: str,
        operation: Callable[[Client, bytes], Awaitable[T]],
        *,
        force: bool = False,
    ) -> tuple[bool, T | None]:
        """``operation(client, wire_key)`` on the server holding ``key``."""
        if not await self._ready():
            return False, None
        node = self._single or self._ring.owner(key)
        wire = self._wire(key)
        return await node.call(what, lambda: operation(node.client, wire), force=force)

    # -- reads, shared per event-loop turn ---------------------------------------------

    async def _fetch(self, *keys: str) -> Found:
        """``{key: value}`` from one ``get`` per server, shared with the concurrent
        callers of this event-loop turn (`shop.cache.batch`)."""
        return await self._gets.get(keys)

    async def _get_now(self, keys: list[str]) -> Found:
        """``keys`` from their servers, now: one ``get`` per server, concurrently."""
        if not await self._ready():
            return {}
        wire = self._wire
        if self._single is not None:
            client = self._single.client
            ok, values = await self._single.call(
                "get", lambda: client.get_values(*(wire(k) for k in keys))
            )
            if not ok or values is None:
                return {}
            return {k: values.get(wire(k)) for k in keys}
        groups: dict[Node, list[str]] = {}
        for key in keys:
            if key.startswith(_VERSION):
                for node in self._ring.replicas(key):
                    groups.setdefault(node, []).append(key)
            else:
                groups.setdefault(self._ring.owner(key), []).append(key)
        replies = await asyncio.gather(
            *(self._get_on(node, [wire(k) for k in ks]) for node, ks in groups.items())
        )
        found: Found = {}
        copies: dict[str, list[bytes | None]] = {}
        for node_keys, values in zip(groups.values(), replies, strict=True):
            if values is None:
                continue
            for key in node_keys:
                if key.startswith(_VERSION):
                    copies.setdefault(key, []).append(values.get(wire(key)))
                else:
                    found[key] = values.get(wire(key))
        for key, answers in copies.items():
            found[key] = self._highest(key, answers)
        return found

    @staticmethod
    async def _get_on(node: Node, keys: list[bytes]) -> dict[bytes, bytes] | None:
        ok, values = await node.call("get", lambda: node.client.get_values(*keys))
        return values if ok else None

    # -- plain keys ----------------------------------------------------------------

    async def _settled(self, pending: Mapping[str, object], item: str) -> bool:
        """Whether ``item`` (a key or a namespace) has no undelivered write in
        ``pending``, after one attempt to deliver what is pending."""
        if item not in pending:
            return True
        await self._flush_pending()
        return item not in pending

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = None
        if await self._settled(self._pending.deletes, key) and key not in self._pending.puts:
            found = await self._fetch(key)
            value = found.get(key)
        self._count(value)
        return value

    async def get_many(self, *keys: str) -> list[bytes | None]:
        if not keys:
            return []
        if self._pending.deletes:
            await self._flush_pending()
        found = await self._fetch(*keys)
        result = [self._unless_pending(key, found) for key in keys]
        for value in result:
            self._count(value)
        return result

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        ok, _ = await self._on_owner(key, "set", lambda c, k: c.set(k, value, exptime=ttl))
        if ok:
            self.stats.sets += 1

    async def delete(self, key: str) -> None:
        ok, _ = await self._on_owner(key, "delete", lambda c, k: c.delete(k), force=True)
        if not ok:
            self._pending.delete(key)
            self._start_retrying()

    async def put_newer(
        self, entries: Mapping[str, tuple[int, bytes]], ttl: int, *, fill: bool = False
    ) -> None:
        """Compare-and-set on the stamps (see `Cache.put_newer`): one ``gets`` per
        server for all the keys, then an ``add`` (absent) or a ``cas`` (older) per
        key, concurrently; a key whose ``add`` or ``cas`` lost a race is tried
        again. A writer's puts are forced through an open circuit once, like
        invalidations, and kept pending if undelivered; a fill is neither."""
        if fill:
            await self._put_newer(entries, ttl, force=False)
            return
        undelivered = await self._put_newer(entries, ttl, force=True)
        self._pending.put(entries, undelivered, ttl)
        if undelivered:
            self._start_retrying()

    async def _put_newer(
        self, entries: Mapping[str, tuple[int, bytes]], ttl: int, *, force: bool
    ) -> list[str]:
        """The keys of ``entries`` not delivered."""
        if not entries:
            return []
        if not await self._ready():
            return list(entries)
        return await stamped_puts.put_all(
            entries, ttl, force, lambda key: self._single or self._ring.owner(key), self._wire
        )

    async def _delete_now(self, key: str) -> bool:
        ok, _ = await self._on_owner(key, "delete", lambda c, k: c.delete(k))
        return ok

    def _unless_pending(self, key: str, found: Found) -> bytes | None:
        """``found[key]``, or a miss while a write of ``key`` waits to be delivered."""
        if self._pending.hides(key):
            return None
        return found.get(key)

    def _count(self, value: bytes | None) -> None:
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1

    # -- lookups under a namespace's version -----------------------------------------

    async def lookup(self, namespace: str, suffix: str, more: Sequence[str] = ()) -> Lookup:
        if not await self._settled(self._pending.bumps, namespace):
            self.stats.misses += 1
            return Lookup(None, None, await self._more(more))
        last = self._last_version.get(namespace)
        if last is not None:
            # One round trip: the counter and the entry under the version seen
            # last. The counter is read in the same command, so a hit is as
            # fresh as a separate version read would have made it.
            key = make_key(namespace, last, suffix)
            name = version_key(namespace)
            found = await self._fetch(name, key, *more)
            if name not in found:
                self.stats.misses += 1
                return Lookup(None, None, self._pick(more, found))
            if found[name] == str(last).encode():
                value = found.get(key)
                self._count(value)
                return Lookup(key, value, self._pick(more, found))
        return await self._lookup_current(namespace, suffix, more)

    async def get_and_lookup(
        self, key: str, namespace: str, suffix: str, more: Sequence[str] = ()
    ) -> tuple[bytes | None, Lookup]:
        """The user snapshot and a route's entry in one ``get`` (see `shop.reads`):
        ``key``, the namespace's counter, the entry under the version seen last
        and the plain keys ``more``. Anything unusual (no version seen yet, a
        pending bump, delete or put, the version moved) takes the paths of
        `get` and `lookup`."""
        last = self._last_version.get(namespace)
        if last is None or namespace in self._pending.bumps or key in self._pending.deletes:
            return await super().get_and_lookup(key, namespace, suffix, more)
        entry_key = make_key(namespace, last, suffix)
        name = version_key(namespace)
        found = await self._fetch(key, name, entry_key, *more)
        value = found.get(key)
        self._count(value)
        if name not in found:
            self.stats.misses += 1
            return value, Lookup(None, None, self._pick(more, found))
        if found[name] == str(last).encode():
            entry = found.get(entry_key)
            self._count(entry)
            return value, Lookup(entry_key, entry, self._pick(more, found))
        return value, await self._lookup_current(namespace, suffix, more)

    def _pick(self, keys: Sequence[str], found: Found) -> dict[str, bytes | None]:
        return {key: self._unless_pending(key, found) for key in keys}

    async def _more(self, keys: Sequence[str]) -> dict[str, bytes | None]:
        return dict(zip(keys, await self.get_many(*keys), strict=True)) if keys else {}

    async def _lookup_current(self, namespace: str, suffix: str, more: Sequence[str]) -> Lookup:
        """The lookup under the namespace's version read now (the slow path)."""
        version = await self._current_version(namespace)
        if version is None:
            self.stats.misses += 1
            return Lookup(None, None, await self._more(more))
        key = make_key(namespace, version, suffix)
        found = await self._fetch(key, *more)
        value = found.get(key)
        self._count(value)
        return Lookup(key, value, self._pick(more, found))

    # -- pending invalidations -------------------------------------------------------

    async def _flush_pending(self) -> None:
        """Try to deliver every pending write once (`shop.cache.pending`)."""

        async def put(group: dict[str, tuple[int, bytes]], ttl: int) -> list[str]:
            return await self._put_newer(group, ttl, force=False)

        await self._pending.deliver(
            lambda namespace: self._incr(namespace, force=False),
            self._delete_now,
            put,
            may_put=any(node.may_call() for node in self._ring.nodes),
        )

    def _start_retrying(self) -> None:
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.get_running_loop().create_task(self._retry_pending())

    async def _retry_pending(self) -> None:
        while self._pending:
            await asyncio.sleep(_RETRY_EVERY)
            await self._flush_pending()  # a server whose circuit is open is skipped at no cost

    # -- lifecycle -------------------------------------------------------------------

    async def ping(self) -> bool:
        """Ask every server itself, whatever the circuits say (for /health/ready)."""
        return all(await asyncio.gather(*(node.ping() for node in self._ring.nodes)))

    async def flush(self) -> bool:
        """Empty every server (``flush_all``): after a database restore, and between tests.

        Every entry goes, other databases' too (they only miss). Versions read
        later are created afresh, never equal to one in use before.
        """
        replies = await asyncio.gather(
            *(
                node.call("flush_all", node.client.flush_all, force=True)
                for node in self._ring.nodes
            )
        )
        self._last_version.clear()
        return all(ok for ok, _ in replies)

    async def close(self) -> None:
        tasks = [task for task in (self._retry_task, *self._repairs.values()) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for node in self._ring.nodes:
            await node.close()
