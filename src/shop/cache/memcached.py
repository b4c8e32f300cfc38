"""`MemcachedCache`: the cache on one memcached server or a pool of them.

Reads. `lookup` usually costs one round trip: it asks for the version counter
and the entry under the version it saw last, in one ``get``; only when the
version moved does it need a second ``get``. The gets of one event-loop turn
are shared (`_fetch`): one multi-key ``get`` per server, sent concurrently.

Servers. Keys are spread by rendezvous hashing (`shop.cache.ring`); each
server has its own connections, timeout and circuit breaker
(`shop.cache.node`). A server that is down costs only its share of keys: they
miss (reads) or are dropped (writes); nothing fails. Version counters are the
exception: each lives on two servers (one when there is one), a read takes the
highest value the answering copies hold, a bump increments every copy it can
reach, and a copy found lower or missing is raised to the highest
(compare-and-swap, so it never overshoots). So a namespace stays cacheable
while one of its two servers is down, and a server that comes back, empty
after a restart or still holding what it had before a partition, never brings
back an old version: its copy is lower than the other's, or missing. When no
copy is left anywhere, the counter is re-created from the clock
(`base.initial_version`), above any value it held before.

Every key on the wire, version counters included, starts with a prefix naming
the database (`shop.identity`): shops sharing memcached never read each
other's entries. Callers never see it. Until the prefix is known (PostgreSQL
down at start-up) every call is skipped.

Invalidations are not dropped like other writes. A version bump, a delete
or a writer's `put_newer` that fails is remembered as pending
(`shop.cache.pending`): until it has reached memcached, this instance treats
that namespace (or key) as a miss, and a background task keeps retrying it,
so stale entries stop being served as soon as memcached answers again. Known limits: another API instance that can still reach a server while
this one cannot may serve entries older than a bump this instance failed to
deliver, until the retry lands or the entries expire (300 s products, 60 s
orders); and a counter whose two copies disagree (just after one came back,
before a read raised it) could show the lower value if the higher copy's
server failed in that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from shop._compat.aiomcache import Client
from shop.cache import replicas, stamped_puts
from shop.cache.base import (
    Cache,
    CacheStats,
    KeyPrefix,
    Lookup,
    initial_version,
    make_key,
    version_key,
)
from shop.cache.batch import Found, SharedGets
from shop.cache.node import Node
from shop.cache.pending import Pending
from shop.cache.ring import Ring

__all__ = ["MemcachedCache"]

logger = logging.getLogger("shop.cache")

_CIRCUIT_SECONDS = 1.0
_RETRY_EVERY = 0.25
_VERSION = version_key("")
"""Every version counter's key starts with this; they are the replicated keys."""

T = TypeVar("T")


class MemcachedCache(Cache):
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
        self._prefix: bytes | None = None
        """Put in front of every key on the wire; None until known (every call skipped)."""
        self._prefix_source: Callable[[], Awaitable[str]] | None = None
        self._prefix_tried = -math.inf
        self._prefix_reading = False
        if isinstance(key_prefix, str):
            self._prefix = key_prefix.encode()
        else:
            self._prefix_source = key_prefix
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

    # -- the key prefix --------------------------------------------------------------

    async def _ready(self) -> bool:
        """Whether calls may go out: the key prefix is known (else the call is skipped)."""
        if self._prefix is not None or await self._read_prefix():
            return True
        self.stats.skipped += 1
        return False

    def _wire(self, key: str) -> bytes:
        assert self._prefix is not None  # `_ready` made sure
        return self._prefix + key.encode()

    async def _read_prefix(self) -> bool:
        """Learn the key prefix (`shop.identity`); False while it cannot be read.

        Until then every call is skipped: reads miss, and invalidations stay
        pending (delivered with the prefix once it is known). One reader at a
        time, at most once a second, so a PostgreSQL outage at start-up costs
        requests nothing.
        """
        now = time.monotonic()
        if self._prefix_source is None or self._prefix_reading or now - self._prefix_tried < 1.0:
            return False
        self._prefix_reading, self._prefix_tried = True, now
        try:
            async with asyncio.timeout(5):
                prefix = await self._prefix_source()
        except Exception as exc:
            logger.warning("cache disabled until the database names its key prefix: %s", exc)
            return False
        finally:
            self._prefix_reading = False
        self._prefix = prefix.encode()
        return True

    async def _on_owner(
        self,
        key: str,
        what: str,
        operation: Callable[[Client, bytes], Awaitable[T]],
        *,
        force: bool = False,
    ) -> tuple[bool, T | None]:
        """``operation(client, wire_key)`` on the server holding ``key``."""
        if self._prefix is None and not await self._ready():
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
        if self._prefix is None and not await self._ready():
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
        if self._prefix is None and not await self._ready():
            return list(entries)
        groups: dict[Node, dict[str, tuple[int, bytes]]] = {}
        for key, entry in entries.items():
            node = self._single or self._ring.owner(key)
            groups.setdefault(node, {})[key] = entry
        missed = await asyncio.gather(
            *(
                stamped_puts.put_on(
                    node, {self._wire(key): key for key in group}, group, ttl, force
                )
                for node, group in groups.items()
            )
        )
        return [key for keys in missed for key in keys]

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

    # -- versions ------------------------------------------------------------------

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
        if self._prefix is None and not await self._ready():
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
        """The user snapshot and a route's entry in one ``get`` (see `shop.prefetch`):
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
        if self._prefix is None and not await self._ready():
            return False
        name = version_key(namespace)
        copies = self._ring.replicas(name)
        targets = [node for node in copies if node.may_call()] or (list(copies) if force else [])
        if not targets:
            return False
        wire = self._wire(name)
        moved = await asyncio.gather(*(replicas.incr_on(node, wire, force) for node in targets))
        return any(moved)

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
