"""One memcached server: its connections, its timeout and its circuit breaker.

Each server of ``MEMCACHED_URL`` is a `Node`. A call runs under a short
timeout (`Deadline`); a timeout, refused connection or protocol error counts
as a failure of that server only: it is logged at most once per `WARN_EVERY`
seconds and opens that server's circuit for ``circuit_seconds``, during which
calls to it are skipped (its keys miss) instead of each paying the timeout.
Then one call probes it; the others keep skipping it until the probe succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

from shop._compat.aiomcache import Client
from shop.cache.base import CacheStats

__all__ = ["Deadline", "Node"]

logger = logging.getLogger("shop.cache")

WARN_EVERY = 30.0
LATE = 0.005
"""A deadline timer that fires this much past its time found the event loop busy."""
MAX_WAIT = 4
"""However busy the event loop, a call gives up after this many timeouts in total."""

T = TypeVar("T")


class Deadline:
    """``asyncio.timeout(timeout)`` that does not blame memcached for a busy event loop.

    Under load the loop can be tens of milliseconds late: memcached's reply
    sits unread in the socket while other requests run, and a plain timeout
    would call it a failure, open the circuit and send every cached read to
    PostgreSQL. So when the timer fires more than `LATE` past its time, the
    loop was busy, not necessarily memcached: the deadline moves to ``timeout``
    from now, so the reply gets one attentive turn of the loop. Only a timer
    that fires on time (memcached had ``timeout`` seconds of a listening loop
    and said nothing) or the overall bound, ``MAX_WAIT * timeout`` since the
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
        self._limit = now + self._timeout * MAX_WAIT
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
        if now - self._handle.when() > LATE and now < self._limit:
            self._handle = self._loop.call_at(min(now + self._timeout, self._limit), self._fire)
            return
        self._handle = None
        self._cm.reschedule(now)  # expires now: the call raises TimeoutError


class Node:
    """One server: an aiomcache client, a timeout and a circuit breaker."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        pool_size: int,
        circuit_seconds: float,
        stats: CacheStats,
    ) -> None:
        self.host, self.port = host, port
        self.name = f"{host}:{port}"
        self.client = Client(host, port, pool_size)
        self._timeout = timeout
        self._circuit_seconds = circuit_seconds
        self._stats = stats
        self.open_until = 0.0
        """0 while the circuit is closed; else when the next probe may go out."""
        self._probing = False
        self._last_warning = -math.inf
        self.last_error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.open_until == 0.0

    def may_call(self) -> bool:
        """Whether a non-forced call would go out now (the circuit is closed, or may probe)."""
        return self.open_until == 0.0 or (not self._probing and time.monotonic() >= self.open_until)

    def _succeeded(self) -> None:
        if self.open_until != 0.0:
            logger.info("memcached at %s answers again", self.name)
            self.open_until = 0.0

    def _failed(self, exc: BaseException, what: str) -> None:
        self._stats.errors += 1
        now = time.monotonic()
        self.open_until = now + self._circuit_seconds
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            logger.warning(
                "memcached at %s unavailable (%s); its keys are served from the database",
                self.name,
                self.last_error,
            )

    async def call(
        self, what: str, operation: Callable[[], Awaitable[T]], *, force: bool = False
    ) -> tuple[bool, T | None]:
        """``(ok, result)``; never raises except on cancellation of the caller.

        ``force`` bypasses an open circuit (not the timeout): invalidations are
        worth one attempt even while the server looks down.
        """
        probing = False
        if not force and self.open_until != 0.0:
            if self._probing or time.monotonic() < self.open_until:
                self._stats.skipped += 1
                return False, None
            probing = self._probing = True  # half-open: this call is the probe
        self._stats.calls += 1
        try:
            async with Deadline(self._timeout):
                result = await operation()
        except Exception as exc:  # the cache must never fail a request
            self._failed(exc, what)
            return False, None
        finally:
            if probing:
                self._probing = False
        self._succeeded()
        return True, result

    async def ping(self) -> bool:
        """Ask the server itself, whatever the circuit says (for /health/ready)."""
        self._stats.calls += 1
        try:
            async with Deadline(self._timeout):
                await self.client.version()
        except Exception as exc:
            self._failed(exc, "version")
            return False
        self._succeeded()
        return True

    async def close(self) -> None:
        await self.client.close()
