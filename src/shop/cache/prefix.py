"""The key prefix naming the database, in front of every key on the wire.

Every key `MemcachedCache` sends, version counters included, starts with a
prefix naming the database (`shop.identity`): shops sharing memcached never
read each other's entries. Callers never see it. It is given, or read when
first needed; until it is known (PostgreSQL down at start-up) every call is
skipped: reads miss, and invalidations stay pending (delivered with the
prefix once it is known). One reader at a time, at most once a second, so a
PostgreSQL outage at start-up costs requests nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from shop.cache.base import CacheStats, KeyPrefix

__all__ = ["WirePrefix"]

logger = logging.getLogger("shop.cache")


class WirePrefix:
    """The prefix, known or to be read (``key_prefix``: a string, or how to read it)."""

    def __init__(self, key_prefix: KeyPrefix, stats: CacheStats) -> None:
        self.value: bytes | None = None
        """Put in front of every key on the wire; None until known (every call skipped)."""
        self._source: Callable[[], Awaitable[str]] | None = None
        self._tried = -math.inf
        self._reading = False
        self._stats = stats
        if isinstance(key_prefix, str):
            self.value = key_prefix.encode()
        else:
            self._source = key_prefix

    async def ready(self) -> bool:
        """Whether calls may go out: the prefix is known (else the call is skipped)."""
        if self.value is not None or await self._read():
            return True
        self._stats.skipped += 1
        return False

    def wire(self, key: str) -> bytes:
        assert self.value is not None  # `ready` made sure
        return self.value + key.encode()

    async def _read(self) -> bool:
        """Learn the prefix (`shop.identity`); False while it cannot be read."""
        now = time.monotonic()
        if self._source is None or self._reading or now - self._tried < 1.0:
            return False
        self._reading, self._tried = True, now
        try:
            async with asyncio.timeout(5):
                prefix = await self._source()
        except Exception as exc:
            logger.warning("cache disabled until the database names its key prefix: %s", exc)
            return False
        finally:
            self._reading = False
        self.value = prefix.encode()
        return True
