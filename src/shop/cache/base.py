"""What the app needs from a cache: the `Cache` interface, its namespaces and key rules."""

from __future__ import annotations

import abc
import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

__all__ = [
    "ORDERS",
    "PRODUCTS",
    "Cache",
    "CacheStats",
    "KeyPrefix",
    "Lookup",
    "initial_version",
    "make_key",
    "stamped",
    "unstamp",
    "version_key",
]

PRODUCTS = "products_list"
"""Namespace of product list pages: catalogue fields, bumped when a product is created,
edited or archived, or its stock crosses zero (``in_stock`` membership)."""
PRODUCT_DETAIL = "product_detail"
"""Namespace of product details (catalogue fields): bumped when a product is created,
edited, archived or restored."""
ORDERS = "order_detail"
"""Namespace of order detail responses; bumped by any order change."""

MAX_KEY = 240
"""Longest key callers use; the database's prefix (at most 10) goes in front on the wire."""

KeyPrefix = str | Callable[[], Awaitable[str]]
"""The key prefix naming the database, or how to read it when first needed (`shop.identity`)."""


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


_NOTHING: Mapping[str, bytes | None] = MappingProxyType({})


class Lookup(NamedTuple):
    key: str | None
    """Where to store a freshly built value; None when the namespace version is unknown."""
    value: bytes | None
    more: Mapping[str, bytes | None] = _NOTHING
    """Plain keys read along with the entry (``more`` of `Cache.lookup`): value or None."""


SAFE_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY}}}")
"""A key memcached takes: printable ASCII without spaces, short enough (one C-level match)."""


def make_key(prefix: str, version: int, suffix: str) -> str:
    """``<prefix>_v<version>_<suffix>``; a suffix too long or unsafe for memcached is hashed."""
    key = f"{prefix}_v{version}_{suffix}"
    if SAFE_KEY.fullmatch(key) is None:
        key = f"{prefix}_v{version}_h{hashlib.sha256(suffix.encode(errors='surrogatepass')).hexdigest()}"
    return key


def stamped(stamp: int, value: bytes) -> bytes:
    """A value as `Cache.put_newer` stores it: ``<stamp>:<value>``."""
    return b"%d:%s" % (stamp, value)


def unstamp(raw: bytes | None) -> tuple[int, bytes] | None:
    """``(stamp, value)`` of a stamped value; None for a miss or bytes that are not one."""
    if raw is None:
        return None
    stamp, sep, value = raw.partition(b":")
    if not sep or not stamp.isdigit():
        return None
    return int(stamp), value


def version_key(namespace: str) -> str:
    return f"version_{namespace}"


def initial_version(above: int = 0) -> int:
    """A version no entry of the namespace was ever cached under (and greater than ``above``).

    A counter is created when none exists: first use, or every server that held
    it restarted (or evicted it) while entries cached under its versions may
    live on in other servers. Milliseconds since the epoch times 2**20: the old
    counter counted up from its own creation time the same way, so it could
    only have reached this value with over a million bumps per millisecond.
    """
    return max(int(time.time() * 1000) << 20, above + 1)


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
    async def get_many(self, *keys: str) -> list[bytes | None]:
        """The values of ``keys`` (None for a miss), in one round trip per server."""

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, ttl: int) -> None: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    async def put_newer(
        self, entries: Mapping[str, tuple[int, bytes]], ttl: int, *, fill: bool = False
    ) -> None:
        """Store each ``key: (stamp, value)`` (as `stamped`) unless the cache holds
        that key under a stamp at least as high: a value derived from a newer state
        is never replaced by an older one, whatever order the puts arrive in.

        For values whose source orders its own changes (a row's version moved by
        every update). A writer's put that cannot be delivered is remembered:
        until it is, this instance reads that key as a miss. ``fill``: a reader
        storing what it read; not worth a dead server's timeout, and dropped if
        undelivered (freshness rests on the writers' puts).
        """

    @abc.abstractmethod
    async def version(self, namespace: str) -> int:
        """The namespace's current version; 0 when unknown (do not store under it)."""

    @abc.abstractmethod
    async def bump(self, namespace: str) -> None: ...

    @abc.abstractmethod
    async def lookup(self, namespace: str, suffix: str, more: Sequence[str] = ()) -> Lookup:
        """The entry ``suffix`` of ``namespace`` under its current version, and the
        plain keys ``more`` (a route's other entries it can name up front), read
        together where the backend can."""

    async def get_and_lookup(
        self, key: str, namespace: str, suffix: str, more: Sequence[str] = ()
    ) -> tuple[bytes | None, Lookup]:
        """`get` of ``key`` and `lookup` of ``suffix``; a backend may answer both in one round trip."""
        return await self.get(key), await self.lookup(namespace, suffix, more)

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    @abc.abstractmethod
    async def flush(self) -> bool:
        """Drop every entry (`shop cache flush`, after a database restore; tests); True if done."""

    @abc.abstractmethod
    async def close(self) -> None: ...
