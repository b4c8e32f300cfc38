"""The version-keyed cache: memcached through aiomcache, or an in-process dict in dev mode.

Keys embed a namespace version (``products_list_v<version>_<query>``). A change
that could alter a cached response bumps the version (one ``incr``, O(1)); the
old keys are never read again and expire by TTL. No key scans.

The cache is an optimisation, never a dependency. Every memcached call runs
under a short timeout; a timeout, refused connection or protocol error counts
as a miss (reads) or is ignored (writes), is logged at most once per
`_WARN_EVERY` seconds, and opens a short circuit so that while memcached is
down requests do not each pay the timeout. ``healthy`` feeds /health/ready.

Known limit: a version bump that happens while memcached is unreachable is
lost; entries written before the outage can then be served until their TTL
(300 s products, 60 s orders) if the same memcached comes back with its data.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import aiomcache

from shop.settings import CacheSettings

__all__ = [
    "ORDERS",
    "PRODUCTS",
    "Cache",
    "CacheStats",
    "InProcessCache",
    "MemcachedCache",
    "create_cache",
    "make_key",
]

PRODUCTS = "products_list"
"""Namespace of product list and detail responses; bumped by any product or stock change."""
ORDERS = "order_detail"
"""Namespace of order detail responses; bumped by any order change."""

logger = logging.getLogger("shop.cache")

_WARN_EVERY = 30.0
_CIRCUIT_SECONDS = 1.0
_MAX_KEY = 240

T = TypeVar("T")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    sets: int = 0
    bumps: int = 0


def make_key(prefix: str, version: int, suffix: str) -> str:
    """``<prefix>_v<version>_<suffix>``; a suffix too long or unsafe for memcached is hashed."""
    key = f"{prefix}_v{version}_{suffix}"
    if len(key) > _MAX_KEY or any(ord(c) <= 32 or ord(c) == 127 for c in key):
        key = f"{prefix}_v{version}_h{hashlib.sha256(suffix.encode()).hexdigest()}"
    return key


class Cache(Protocol):
    stats: CacheStats

    @property
    def healthy(self) -> bool: ...

    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, *keys: str) -> list[bytes | None]: ...

    async def set(self, key: str, value: bytes, ttl: int) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def version(self, namespace: str) -> int: ...

    async def bump(self, namespace: str) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def _version_key(namespace: str) -> str:
    return f"version_{namespace}"


def _initial_version() -> int:
    # Time-based, so a memcached that restarted (and lost the counter) never
    # hands out a version whose keys another instance may still hold in flight.
    return int(time.time() * 1000)


class InProcessCache:
    """Dev-mode backend: a dict with expiry. Coherent only within one process."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, bytes]] = {}
        self.stats = CacheStats()

    @property
    def healthy(self) -> bool:
        return True

    async def get(self, key: str) -> bytes | None:
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
        if len(self._data) > 50_000:
            now = time.monotonic()
            self._data = {k: v for k, v in self._data.items() if v[0] >= now}
        self._data[key] = (time.monotonic() + ttl, value)
        self.stats.sets += 1

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def version(self, namespace: str) -> int:
        key = _version_key(namespace)
        entry = self._data.get(key)
        if entry is None:
            self._data[key] = (float("inf"), str(_initial_version()).encode())
            return int(self._data[key][1])
        return int(entry[1])

    async def bump(self, namespace: str) -> None:
        current = await self.version(namespace)
        self._data[_version_key(namespace)] = (float("inf"), str(current + 1).encode())
        self.stats.bumps += 1

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


class MemcachedCache:
    """memcached through aiomcache, with timeouts and a circuit breaker aiomcache lacks."""

    def __init__(self, host: str, port: int, timeout: float, pool_size: int = 16) -> None:
        self._host, self._port, self._pool_size = host, port, pool_size
        self._timeout = timeout
        self._client = self._new_client()
        self._open_until = 0.0
        self._last_warning = 0.0
        self._last_error: str | None = None
        self.stats = CacheStats()

    def _new_client(self) -> aiomcache.Client:
        return aiomcache.Client(self._host, self._port, pool_size=self._pool_size, pool_minsize=1)

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self._open_until

    def _fail(self, exc: BaseException, what: str) -> None:
        self.stats.errors += 1
        self._open_until = time.monotonic() + _CIRCUIT_SECONDS
        if isinstance(exc, TimeoutError):
            # A cancelled call can leave a half-read reply on its pooled
            # connection; the next caller would read it as its own answer.
            # Start over with fresh connections instead.
            old, self._client = self._client, self._new_client()
            asyncio.get_running_loop().create_task(old.close())
        now = time.monotonic()
        self._last_error = f"{what}: {type(exc).__name__}: {exc}"
        if now - self._last_warning >= _WARN_EVERY:
            self._last_warning = now
            logger.warning(
                "memcached at %s:%s unavailable (%s); serving from the database",
                self._host,
                self._port,
                self._last_error,
            )

    async def _call(self, what: str, coro_factory: Callable[[], Awaitable[Any]], default: T) -> T:
        if not self.healthy:
            return default
        try:
            result: T = await asyncio.wait_for(coro_factory(), self._timeout)
            return result
        except (OSError, TimeoutError, aiomcache.exceptions.ClientException, ValueError) as exc:
            self._fail(exc, what)
            return default

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._call("get", lambda: self._client.get(key.encode()), None)
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    async def get_many(self, *keys: str) -> list[bytes | None]:
        values: tuple[bytes | None, ...] | None = await self._call(
            "get_many", lambda: self._client.multi_get(*(k.encode() for k in keys)), None
        )
        if values is None:
            self.stats.misses += len(keys)
            return [None] * len(keys)
        for value in values:
            if value is None:
                self.stats.misses += 1
            else:
                self.stats.hits += 1
        return list(values)

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        await self._call("set", lambda: self._client.set(key.encode(), value, exptime=ttl), False)
        self.stats.sets += 1

    async def delete(self, key: str) -> None:
        await self._call("delete", lambda: self._client.delete(key.encode()), False)

    async def version(self, namespace: str) -> int:
        key = _version_key(namespace).encode()
        raw: bytes | None = await self._call("get", lambda: self._client.get(key), None)
        if raw is not None:
            return int(raw)
        if not self.healthy:
            return 0
        initial = _initial_version()
        added = await self._call("add", lambda: self._client.add(key, str(initial).encode()), False)
        if added:
            return initial
        raw = await self._call("get", lambda: self._client.get(key), None)
        return int(raw) if raw is not None else 0

    async def bump(self, namespace: str) -> None:
        key = _version_key(namespace).encode()
        self.stats.bumps += 1
        bumped = await self._call("incr", lambda: self._client.incr(key), None)
        if bumped is None and self.healthy:
            # Missing counter: create it. Whoever reads it next gets a version
            # that no cached entry carries.
            await self._call("add", lambda: self._client.add(key, str(_initial_version()).encode()), False)

    async def ping(self) -> bool:
        self._open_until = 0.0  # a health check always asks memcached itself
        result = await self._call("version", self._client.version, None)
        return result is not None

    async def close(self) -> None:
        await self._client.close()

    @property
    def last_error(self) -> str | None:
        return self._last_error


def create_cache(settings: CacheSettings) -> Cache:
    if settings.memcached is None:
        return InProcessCache()
    host, port = settings.memcached
    return MemcachedCache(host, port, settings.timeout)
