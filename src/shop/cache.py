"""The version-keyed cache: memcached through aiomcache, or an in-process dict in dev mode.

Keys embed a namespace version (``products_list_v<version>_<query>``). A change
that could alter a cached response bumps the version (one ``incr``, O(1)); the
old keys are never read again and expire by TTL. No key scans.

`Cache.lookup(namespace, suffix)` is the read path for versioned entries: it
returns the entry (or None) and the key to store a freshly built value under.
On memcached it usually costs one round trip: it asks for the version counter
and the entry under the version it saw last, in one ``get``; only when the
version moved does it need a second ``get``. A ``Lookup`` without a key means
"the version is unknown right now": build the value from the database and do
not store it.

Every key on the wire, version counters included, starts with a prefix naming
the database (`shop.identity`): shops sharing a memcached never read each
other's entries. Callers never see it.

The cache is an optimisation, never a dependency. Every memcached call runs
under a short timeout (`_Deadline`); a timeout, refused connection or protocol error counts
as a miss (reads) or is dropped (writes), is logged at most once per
`_WARN_EVERY` seconds, and opens a short circuit so that while memcached is
down requests do not each pay the timeout. After `_CIRCUIT_SECONDS` one call
probes memcached again; the others keep skipping it until the probe succeeds.

Invalidations are not dropped like other writes. A version bump or a delete
that fails is remembered as pending: until it has reached memcached, this
instance treats that namespace (or key) as a miss, and a background task keeps
retrying it, so stale entries stop being served as soon as memcached answers
again. Known limit: another API instance that can still reach memcached while
this one cannot may serve entries older than a bump this instance failed to
deliver, until the retry lands or the entries expire (300 s products, 60 s
orders).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import NamedTuple, TypeVar
from urllib.parse import quote

import aiomcache
from aiomcache import constants as mc_const
from aiomcache.client import acquire
from aiomcache.exceptions import ClientException, ValidationException
from aiomcache.pool import Connection, MemcachePool

from shop.settings import CacheSettings

__all__ = [
    "ORDERS",
    "PRODUCTS",
    "Cache",
    "CacheStats",
    "InProcessCache",
    "Lookup",
    "MemcachedCache",
    "create_cache",
    "make_key",
    "quote_suffix",
]

PRODUCTS = "products_list"
"""Namespace of product list and detail responses; bumped by any product or stock change."""
ORDERS = "order_detail"
"""Namespace of order detail responses; bumped by any order change."""

logger = logging.getLogger("shop.cache")

_WARN_EVERY = 30.0
_CIRCUIT_SECONDS = 1.0
_LATE = 0.005
"""A deadline timer that fires this much past its time found the event loop busy."""
_MAX_WAIT = 4
"""However busy the event loop, a call gives up after this many timeouts in total."""
_RETRY_EVERY = 0.25
_FORGET_PENDING_AFTER = 600.0
"""A pending invalidation older than the longest TTL is moot: what it invalidates has expired."""
_MAX_KEY = 240

T = TypeVar("T")

KeyPrefix = str | Callable[[], Awaitable[str]]
"""The key prefix, or how to read it when first needed (see `shop.identity`)."""


@dataclass
class CacheStats:
    """Counters for tests, metrics and the closing notes of performance work."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    sets: int = 0
    bumps: int = 0
    calls: int = 0
    """Round trips to the backend actually attempted (one per memcached command)."""
    skipped: int = 0
    """Calls not attempted because the circuit was open."""


class Lookup(NamedTuple):
    key: str | None
    """Where to store a freshly built value; None when the namespace version is unknown."""
    value: bytes | None


_SAFE_KEY = re.compile(rf"[\x21-\x7e]{{1,{_MAX_KEY}}}")
"""A key memcached takes: printable ASCII without spaces, short enough (one C-level match)."""


def make_key(prefix: str, version: int, suffix: str) -> str:
    """``<prefix>_v<version>_<suffix>``; a suffix too long or unsafe for memcached is hashed."""
    key = f"{prefix}_v{version}_{suffix}"
    if _SAFE_KEY.fullmatch(key) is None:
        key = f"{prefix}_v{version}_h{hashlib.sha256(suffix.encode(errors='surrogatepass')).hexdigest()}"
    return key


def quote_suffix(text: str) -> str:
    """Percent-encode a user-supplied key part so the key stays readable ASCII."""
    return quote(text, safe="=&,.-_")


class Cache(abc.ABC):
    """What the app needs from a cache; `InProcessCache` and `MemcachedCache` implement it.

    An ABC rather than a runtime-checkable Protocol: Litestar checks the type
    of the ``cache`` dependency it injects on every request, and isinstance
    against a Protocol walks its members each time (typing's
    ``_get_protocol_attrs``, about 3 % of a cached read); against an ABC it
    is a cached subclass check.
    """

    stats: CacheStats

    @property
    @abc.abstractmethod
    def healthy(self) -> bool: ...

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    async def get_many(self, *keys: str) -> list[bytes | None]: ...

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, ttl: int) -> None: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    async def version(self, namespace: str) -> int:
        """The namespace's current version; 0 when unknown (do not store under it)."""

    @abc.abstractmethod
    async def bump(self, namespace: str) -> None: ...

    @abc.abstractmethod
    async def lookup(self, namespace: str, suffix: str) -> Lookup: ...

    async def get_and_lookup(
        self, key: str, namespace: str, suffix: str
    ) -> tuple[bytes | None, Lookup]:
        """`get` of ``key`` and `lookup` of ``suffix``; a backend may answer both in one round trip."""
        return await self.get(key), await self.lookup(namespace, suffix)

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    @abc.abstractmethod
    async def flush(self) -> bool:
        """Drop every entry (`shop cache flush`, after a database restore; tests); True if done."""

    @abc.abstractmethod
    async def close(self) -> None: ...


def _version_key(namespace: str) -> str:
    return f"version_{namespace}"


def _initial_version() -> int:
    # Time-based, so a memcached that restarted (or evicted the counter) never
    # hands out a version whose keys another instance may still hold in flight.
    return int(time.time() * 1000)


class InProcessCache(Cache):
    """Dev-mode backend: a dict with expiry. Coherent only within one process."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, bytes]] = {}
        self.stats = CacheStats()

    @property
    def healthy(self) -> bool:
        return True

    async def get(self, key: str) -> bytes | None:
        self.stats.calls += 1
        entry = self._data.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._data.pop(key, None)
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return entry[1]

    async def get_many(self, *keys: str) -> list[bytes | None]:
        return [await self.get(key) for key in keys]

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        self.stats.calls += 1
        if len(self._data) > 50_000:
            now = time.monotonic()
            self._data = {k: v for k, v in self._data.items() if v[0] >= now}
        self._data[key] = (time.monotonic() + ttl, value)
        self.stats.sets += 1

    async def delete(self, key: str) -> None:
        self.stats.calls += 1
        self._data.pop(key, None)

    async def version(self, namespace: str) -> int:
        self.stats.calls += 1
        key = _version_key(namespace)
        entry = self._data.get(key)
        if entry is None:
            entry = self._data[key] = (math.inf, str(_initial_version()).encode())
        return int(entry[1])

    async def bump(self, namespace: str) -> None:
        current = await self.version(namespace)
        self._data[_version_key(namespace)] = (math.inf, str(current + 1).encode())
        self.stats.bumps += 1

    async def lookup(self, namespace: str, suffix: str) -> Lookup:
        key = make_key(namespace, await self.version(namespace), suffix)
        return Lookup(key, await self.get(key))

    async def ping(self) -> bool:
        return True

    async def flush(self) -> bool:
        self._data.clear()
        return True

    async def close(self) -> None:
        self._data.clear()


class _CancelSafePool(MemcachePool):
    """aiomcache's pool, minus the half-read-connection hazard.

    aiomcache's ``acquire`` wrapper marks a connection broken only on
    ``Exception``; a cancelled call (our timeout, or a client that went away)
    returns the connection to the pool with its reply still unread, and the
    next command on it would read that reply as its own answer (an old
    version number, someone else's value). Such a connection is closed here.
    """

    def release(self, conn: Connection) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            self._in_use.discard(conn)
            self._do_close(conn)
            return
        super().release(conn)

    async def acquire(self) -> Connection:
        # aiomcache opens a new connection only when the pool is empty: with
        # every connection busy it queues the caller behind them, so all the
        # requests of a worker share one socket and wait for each other's
        # round trips (the "slow memcached" of issue 8 under load). Grow up to
        # maxsize instead, and only queue once that is reached.
        if self._pool.empty() and self.size() < self._maxsize:
            conn = await self._create_new_conn()
            if conn is not None:
                self._in_use.add(conn)
                return conn
        return await super().acquire()


class _Deadline:
    """``asyncio.timeout(timeout)`` that does not blame memcached for a busy event loop.

    Under load the loop can be tens of milliseconds late: memcached's reply
    sits unread in the socket while other requests run, and a plain timeout
    would call it a failure, open the circuit and send every cached read to
    PostgreSQL. So when the timer fires more than `_LATE` past its time, the
    loop was busy, not necessarily memcached: the deadline moves to ``timeout``
    from now, so the reply gets one attentive turn of the loop. Only a timer
    that fires on time (memcached had ``timeout`` seconds of a listening loop
    and said nothing) or the overall bound, ``_MAX_WAIT * timeout`` since the
    call started, ends the call. That bound is the most a hung memcached adds
    to a request before the circuit opens.
    """

    __slots__ = ("_cm", "_handle", "_limit", "_loop", "_timeout")

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._cm = asyncio.timeout(None)
        self._handle: asyncio.TimerHandle | None = None
        self._limit = 0.0

    async def __aenter__(self) -> None:
        await self._cm.__aenter__()
        now = self._loop.time()
        self._limit = now + self._timeout * _MAX_WAIT
        self._handle = self._loop.call_at(now + self._timeout, self._fire)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        await self._cm.__aexit__(exc_type, exc, tb)  # raises TimeoutError once expired

    def _fire(self) -> None:
        assert self._handle is not None
        now = self._loop.time()
        if now - self._handle.when() > _LATE and now < self._limit:
            self._handle = self._loop.call_at(min(now + self._timeout, self._limit), self._fire)
            return
        self._handle = None
        self._cm.reschedule(now)  # expires now: the call raises TimeoutError


class _Client(aiomcache.Client):
    """aiomcache.Client with the pool above and two protocol fixes."""

    def __init__(self, host: str, port: int, pool_size: int) -> None:
        super().__init__(host, port, pool_size=pool_size, pool_minsize=1)
        self._pool = _CancelSafePool(host, port, minsize=1, maxsize=pool_size)

    def _validate_key(self, key: bytes) -> bytes:
        # aiomcache decodes and matches a regex per key; every key here comes from
        # make_key or a fixed format, so the same rule is checked in C.
        if not isinstance(key, bytes) or _SAFE_KEY.fullmatch(key.decode("latin-1")) is None:
            raise ValidationException("invalid memcached key", key)
        return key

    @acquire
    async def get_values(self, conn: Connection, *keys: bytes) -> dict[bytes, bytes]:
        """One ``get`` (without CAS, unlike aiomcache's multi_get) of several keys."""
        values, _ = await self._multi_get(conn, *keys, with_cas=False)
        return values

    async def _execute_simple_command(self, conn: Connection, raw_command: bytes) -> bytes:
        # aiomcache loops on readline() until a line ends with CRLF; at EOF
        # readline() returns b"" without yielding, so a memcached that dies
        # mid-command would spin the event loop forever. readuntil raises.
        conn.writer.write(raw_command)
        await conn.writer.drain()
        line = await conn.reader.readuntil(b"\r\n")
        return line[:-2]

    async def _incr_decr(
        self, conn: Connection, command: bytes, key: bytes, delta: int
    ) -> int | None:
        # aiomcache raises on NOT_FOUND; a missing counter is an answer, not a fault.
        resp = await self._execute_simple_command(conn, b"%s %s %d\r\n" % (command, key, delta))
        if resp == mc_const.NOT_FOUND:
            return None
        if not resp.isdigit():
            raise ClientException(f"memcached {command.decode()} failed", resp)
        return int(resp)


@dataclass(slots=True)
class _Batch:
    """Keys wanted by the callers of one event-loop turn, and the callers waiting."""

    keys: dict[str, None]
    waiters: list[asyncio.Future[tuple[bool, dict[str, bytes | None]]]] = field(
        default_factory=list
    )


class MemcachedCache(Cache):
    """memcached through aiomcache, plus the timeouts, circuit breaker and retries it lacks."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        pool_size: int = 16,
        circuit_seconds: float = _CIRCUIT_SECONDS,
        *,
        key_prefix: KeyPrefix = "",
    ) -> None:
        self._host, self._port = host, port
        self._prefix: bytes | None = None
        """Put in front of every key on the wire; None until known (every call skipped)."""
        self._prefix_source: Callable[[], Awaitable[str]] | None = None
        self._prefix_tried = -math.inf
        self._prefix_reading = False
        if isinstance(key_prefix, str):
            self._prefix = key_prefix.encode()
        else:
            self._prefix_source = key_prefix
        self._timeout = timeout
        self._circuit_seconds = circuit_seconds
        self._client = _Client(host, port, pool_size)
        self._open_until = 0.0
        """0 while the circuit is closed; else when the next probe may go out."""
        self._probing = False
        self._last_warning = -math.inf
        self._last_error: str | None = None
        self._last_version: dict[str, int] = {}
        self._pending_bumps: dict[str, float] = {}
        self._pending_deletes: dict[str, float] = {}
        self._retry_task: asyncio.Task[None] | None = None
        self._batch: _Batch | None = None
        self._bumps: dict[str, asyncio.Future[None]] = {}
        """The bump of each namespace that callers of this turn can still join."""
        self.stats = CacheStats()

    # -- health and the circuit -------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self._open_until == 0.0

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def _may_call(self) -> bool:
        if self._open_until == 0.0:
            return True
        if self._probing or time.monotonic() < self._open_until:
            return False
        self._probing = True  # half-open: this call is the probe, the others keep skipping
        return True

    def _succeeded(self) -> None:
        if self._open_until != 0.0:
            logger.info("memcached at %s:%s answers again", self._host, self._port)
            self._open_until = 0.0

    def _failed(self, exc: BaseException, what: str) -> None:
        self.stats.errors += 1
        now = time.monotonic()
        self._open_until = now + self._circuit_seconds
        self._last_error = f"{what}: {type(exc).__name__}: {exc}"
        if now - self._last_warning >= _WARN_EVERY:
            self._last_warning = now
            logger.warning(
                "memcached at %s:%s unavailable (%s); serving from the database",
                self._host,
                self._port,
                self._last_error,
            )

    async def _call(
        self, what: str, operation: Callable[[], Awaitable[T]], *, force: bool = False
    ) -> tuple[bool, T | None]:
        """``(ok, result)``; never raises except on cancellation of the caller.

        ``force`` bypasses an open circuit (not the timeout): invalidations are
        worth one attempt even while memcached looks down.
        """
        if self._prefix is None and not await self._read_prefix():
            self.stats.skipped += 1
            return False, None
        probing = False
        if not force:
            if not self._may_call():
                self.stats.skipped += 1
                return False, None
            probing = self._probing
        self.stats.calls += 1
        try:
            async with _Deadline(self._timeout):
                result = await operation()
        except Exception as exc:  # the cache must never fail a request
            self._failed(exc, what)
            return False, None
        finally:
            if probing:
                self._probing = False
        self._succeeded()
        return True, result

    def _wire(self, key: str) -> bytes:
        assert self._prefix is not None  # `_call` made sure
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
            self._last_error = f"key prefix: {type(exc).__name__}: {exc}"
            logger.warning("cache disabled until the database names its key prefix: %s", exc)
            return False
        finally:
            self._prefix_reading = False
        self._prefix = prefix.encode()
        return True

    # -- reads, shared per event-loop turn ---------------------------------------------

    async def _fetch(self, *keys: str) -> tuple[bool, dict[str, bytes | None]]:
        """``(ok, {key: value})`` from one ``get`` shared with concurrent callers.

        Every request reads memcached once or twice (the caller's snapshot,
        then the entry), and under load a worker has a dozen requests doing so
        at the same moment; each round trip costs a syscall, a reply parse and
        a wake-up. The first caller becomes the batch's leader: it lets the
        event loop run one turn, so the other requests of that turn add their
        keys, then sends a single multi-key ``get`` for all of them and hands
        each follower the same answer. Timeouts, circuit and errors apply to
        the batch as to one call. A follower that is cancelled just stops
        waiting; if the leader is cancelled, its followers get a miss.
        """
        batch = self._batch
        if batch is not None:
            batch.keys.update(dict.fromkeys(keys))
            waiter: asyncio.Future[tuple[bool, dict[str, bytes | None]]]
            waiter = asyncio.get_running_loop().create_future()
            batch.waiters.append(waiter)
            return await waiter
        batch = self._batch = _Batch(dict.fromkeys(keys))
        answer: tuple[bool, dict[str, bytes | None]] = (False, {})
        try:
            try:
                await asyncio.sleep(0)  # the other requests of this turn join the batch
            finally:
                self._batch = None  # whoever comes next starts a new batch
            unique = list(batch.keys)  # aiomcache refuses duplicate keys
            ok, values = await self._call(
                "get", lambda: self._client.get_values(*(self._wire(k) for k in unique))
            )
            if ok and values is not None:
                answer = (True, {k: values.get(self._wire(k)) for k in unique})
        finally:
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_result(answer)
        return answer

    # -- plain keys ----------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = None
        if key not in self._pending_deletes or await self._flush_pending():
            _, found = await self._fetch(key)
            value = found.get(key)
        self._count(value)
        return value

    async def get_many(self, *keys: str) -> list[bytes | None]:
        found: dict[str, bytes | None] = {}
        if keys and (not self._pending_deletes or await self._flush_pending()):
            _, found = await self._fetch(*keys)
        result = [found.get(key) for key in keys]
        for value in result:
            self._count(value)
        return result

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        ok, _ = await self._call(
            "set", lambda: self._client.set(self._wire(key), value, exptime=ttl)
        )
        if ok:
            self.stats.sets += 1

    async def delete(self, key: str) -> None:
        ok, _ = await self._call("delete", lambda: self._client.delete(self._wire(key)), force=True)
        if not ok:
            self._pending_deletes.setdefault(key, time.monotonic())
            self._start_retrying()

    async def _delete_now(self, key: str) -> bool:
        ok, _ = await self._call("delete", lambda: self._client.delete(self._wire(key)))
        return ok

    def _count(self, value: bytes | None) -> None:
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1

    # -- versions ------------------------------------------------------------------

    async def version(self, namespace: str) -> int:
        if namespace in self._pending_bumps and not await self._flush_pending():
            return 0
        return await self._current_version(namespace) or 0

    async def _current_version(self, namespace: str) -> int | None:
        name = _version_key(namespace)
        ok, raw = await self._call("get", lambda: self._client.get(self._wire(name)))
        if not ok:
            return None
        if raw is None:
            # First use (or memcached restarted): create the counter. If another
            # instance created it first, `add` fails and we read theirs.
            initial = str(_initial_version()).encode()
            ok, added = await self._call("add", lambda: self._client.add(self._wire(name), initial))
            if not ok:
                return None
            if added:
                raw = initial
            else:
                ok, raw = await self._call("get", lambda: self._client.get(self._wire(name)))
                if not ok or raw is None:
                    return None
        return self._parse_version(namespace, raw)

    def _parse_version(self, namespace: str, raw: bytes) -> int | None:
        try:
            version = int(raw)
        except ValueError as exc:
            self._failed(exc, f"version of {namespace}")
            return None
        self._last_version[namespace] = version
        return version

    async def lookup(self, namespace: str, suffix: str) -> Lookup:
        if namespace in self._pending_bumps and not await self._flush_pending():
            self.stats.misses += 1
            return Lookup(None, None)
        last = self._last_version.get(namespace)
        if last is not None:
            # One round trip: the counter and the entry under the version seen
            # last. The counter is read in the same command, so a hit is as
            # fresh as a separate version read would have made it.
            key = make_key(namespace, last, suffix)
            version_key = _version_key(namespace)
            ok, found = await self._fetch(version_key, key)
            if not ok:
                self.stats.misses += 1
                return Lookup(None, None)
            raw_version, value = found.get(version_key), found.get(key)
            if raw_version is not None and raw_version == str(last).encode():
                self._count(value)
                return Lookup(key, value)
        return await self._lookup_current(namespace, suffix)

    async def get_and_lookup(
        self, key: str, namespace: str, suffix: str
    ) -> tuple[bytes | None, Lookup]:
        """The user snapshot and a route's entry in one ``get`` (see `shop.prefetch`):
        ``key``, the namespace's counter and the entry under the version seen
        last. Anything unusual (no version seen yet, a pending bump or delete,
        the version moved) takes the paths of `get` and `lookup`."""
        last = self._last_version.get(namespace)
        if last is None or namespace in self._pending_bumps or key in self._pending_deletes:
            return await super().get_and_lookup(key, namespace, suffix)
        entry_key = make_key(namespace, last, suffix)
        version_key = _version_key(namespace)
        ok, found = await self._fetch(key, version_key, entry_key)
        value = found.get(key)
        self._count(value)
        if not ok:
            self.stats.misses += 1
            return value, Lookup(None, None)
        raw_version = found.get(version_key)
        if raw_version is not None and raw_version == str(last).encode():
            entry = found.get(entry_key)
            self._count(entry)
            return value, Lookup(entry_key, entry)
        return value, await self._lookup_current(namespace, suffix)

    async def _lookup_current(self, namespace: str, suffix: str) -> Lookup:
        """The lookup under the namespace's version read now (the slow path)."""
        version = await self._current_version(namespace)
        if version is None:
            self.stats.misses += 1
            return Lookup(None, None)
        key = make_key(namespace, version, suffix)
        _, value = await self._call("get", lambda: self._client.get(self._wire(key)))
        self._count(value)
        return Lookup(key, value)

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
                self._pending_bumps.setdefault(namespace, time.monotonic())
                self._start_retrying()
            done.set_result(None)

    async def _incr(self, namespace: str, *, force: bool = True) -> bool:
        name = _version_key(namespace)
        ok, bumped = await self._call(
            "incr", lambda: self._client.incr(self._wire(name)), force=force
        )
        if not ok:
            return False
        if bumped is not None:
            return True
        # No counter: create one. Whoever reads it next gets a version no cached
        # entry carries. If a reader created it between our incr and add, that
        # reader may be caching pre-commit data under it: bump theirs instead.
        ok, added = await self._call(
            "add",
            lambda: self._client.add(self._wire(name), str(_initial_version()).encode()),
            force=force,
        )
        if not ok:
            return False
        if added:
            return True
        ok, bumped = await self._call(
            "incr", lambda: self._client.incr(self._wire(name)), force=force
        )
        return ok and bumped is not None

    # -- pending invalidations -------------------------------------------------------

    async def _flush_pending(self) -> bool:
        """Deliver pending bumps and deletes; True when none is left."""
        now = time.monotonic()
        for namespace, since in list(self._pending_bumps.items()):
            # Not forced: while memcached is down, reads must not each pay a timeout.
            if now - since > _FORGET_PENDING_AFTER or await self._incr(namespace, force=False):
                self._pending_bumps.pop(namespace, None)
        for key, since in list(self._pending_deletes.items()):
            if now - since > _FORGET_PENDING_AFTER:
                self._pending_deletes.pop(key, None)
                continue
            if await self._delete_now(key):
                self._pending_deletes.pop(key, None)
        return not self._pending_bumps and not self._pending_deletes

    def _start_retrying(self) -> None:
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.get_running_loop().create_task(self._retry_pending())

    async def _retry_pending(self) -> None:
        while self._pending_bumps or self._pending_deletes:
            await asyncio.sleep(_RETRY_EVERY)
            if time.monotonic() >= self._open_until:
                await self._flush_pending()

    # -- lifecycle -------------------------------------------------------------------

    async def ping(self) -> bool:
        """Ask memcached itself, whatever the circuit says (for /health/ready)."""
        self.stats.calls += 1
        try:
            async with _Deadline(self._timeout):
                await self._client.version()
        except Exception as exc:
            self._failed(exc, "version")
            return False
        self._succeeded()
        return True

    async def flush(self) -> bool:
        """Empty memcached (``flush_all``): after a database restore, and between tests.

        Every entry goes, other databases' too (they only miss). Versions read
        later are created afresh, never equal to one in use before.
        """
        ok, _ = await self._call("flush_all", self._client.flush_all, force=True)
        self._last_version.clear()
        return ok

    async def close(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
        await self._client.close()


def create_cache(settings: CacheSettings, *, key_prefix: KeyPrefix) -> Cache:
    """The configured backend. ``key_prefix`` names the database (`shop.identity`):
    ``CACHE_KEY_PREFIX`` wins over it; the in-process cache needs none."""
    if settings.memcached is None:
        return InProcessCache()
    host, port = settings.memcached
    return MemcachedCache(
        host, port, settings.timeout, key_prefix=settings.key_prefix or key_prefix
    )
