"""Dev-mode backend: the cache in a dict of this process."""

from __future__ import annotations

import math
import time

from shop.cache.base import Cache, CacheStats, Lookup, initial_version, make_key, version_key

__all__ = ["InProcessCache"]


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
        key = version_key(namespace)
        entry = self._data.get(key)
        if entry is None:
            entry = self._data[key] = (math.inf, str(initial_version()).encode())
        return int(entry[1])

    async def bump(self, namespace: str) -> None:
        current = await self.version(namespace)
        self._data[version_key(namespace)] = (math.inf, str(current + 1).encode())
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
