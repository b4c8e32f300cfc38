"""The gets of one event-loop turn, sent as one multi-key ``get`` per server.

Every request reads memcached once or twice (the caller's snapshot and the
route's entry, then perhaps stock figures), and under load a worker has a
dozen requests doing so at the same moment; each round trip costs a syscall,
a reply parse and a wake-up. The first caller becomes the batch's leader: it
lets the event loop run one turn, so the other requests of that turn add their
keys, then sends one multi-key ``get`` per server for all of them and hands
each follower the same answer. Timeouts, circuits and errors apply per server
(the ``get_now`` given). A follower that is cancelled just stops waiting; if
the leader is cancelled, its followers get a miss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["Found", "SharedGets"]

Found = dict[str, bytes | None]
"""Keys whose server answered, each with its value or None; a key whose server failed is absent."""


@dataclass(slots=True)
class _Batch:
    """Keys wanted by the callers of one event-loop turn, and the callers waiting."""

    keys: dict[str, None]
    waiters: list[asyncio.Future[Found]] = field(default_factory=list)


class SharedGets:
    """``get(keys)``, shared by the callers of one event-loop turn."""

    def __init__(self, get_now: Callable[[list[str]], Awaitable[Found]]) -> None:
        self._get_now = get_now
        self._batch: _Batch | None = None

    async def get(self, keys: Iterable[str]) -> Found:
        batch = self._batch
        if batch is not None:
            batch.keys.update(dict.fromkeys(keys))
            waiter: asyncio.Future[Found] = asyncio.get_running_loop().create_future()
            batch.waiters.append(waiter)
            return await waiter
        batch = self._batch = _Batch(dict.fromkeys(keys))
        answer: Found = {}
        try:
            try:
                await asyncio.sleep(0)  # the other requests of this turn join the batch
            finally:
                self._batch = None  # whoever comes next starts a new batch
            answer = await self._get_now(list(batch.keys))  # unique: aiomcache refuses duplicates
        finally:
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_result(answer)
        return answer
