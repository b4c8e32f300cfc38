"""Version counters kept on two servers: reading the copies, raising the low one, bumping.

A namespace's counter lives on two servers (`shop.cache.ring.Ring.replicas`;
one when there is one). A read takes the highest value the answering copies
hold; a copy found lower or missing is raised to it (compare-and-swap, so it
never overshoots a bump that lands meanwhile). A bump increments every copy
it can reach and creates a missing one from the clock (`initial_version`).
`shop.cache.memcached.MemcachedCache` decides when; these functions talk to
the servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from shop.cache.base import initial_version
from shop.cache.node import Node

__all__ = ["add_everywhere", "highest", "incr_on", "raise_copies"]


def highest(copies: Sequence[bytes | None]) -> tuple[int | None, bool]:
    """``(the highest value among the copies that hold a number, whether every copy holds it)``."""
    numbers = [int(raw) if raw is not None and raw.isdigit() else None for raw in copies]
    known = [n for n in numbers if n is not None]
    if not known:
        return None, False
    top = max(known)
    return top, all(n == top for n in numbers)


async def raise_copies(nodes: Sequence[Node], wire: bytes, top: int) -> None:
    """Raise every copy below ``top`` to it (a missing one is added)."""
    value = str(top).encode()

    async def one(node: Node) -> None:
        ok, current = await node.call("gets", lambda: node.client.gets(wire))
        if not ok or current is None:
            return
        raw, token = current
        if raw is None:
            await node.call("add", lambda: node.client.add(wire, value))
        elif token is not None and (not raw.isdigit() or int(raw) < top):
            # cas: a bump that landed since the gets wins (the copy moved on by itself)
            await node.call("cas", lambda: node.client.cas(wire, value, token))

    await asyncio.gather(*(one(node) for node in nodes))


async def add_everywhere(nodes: Sequence[Node], wire: bytes, initial: int) -> bool:
    """``add`` the counter on each of its servers; True when every one took this value."""
    value = str(initial).encode()

    async def add(node: Node) -> bool:
        ok, added = await node.call("add", lambda: node.client.add(wire, value))
        return ok and bool(added)

    return all(await asyncio.gather(*(add(node) for node in nodes)))


async def incr_on(node: Node, wire: bytes, force: bool) -> bool:
    """Increment one copy, creating it if missing; True when it moved."""
    ok, bumped = await node.call("incr", lambda: node.client.incr(wire), force=force)
    if not ok:
        return False
    if bumped is not None:
        return True
    # No counter here: create one. Whoever reads it next gets a version no cached
    # entry carries. If a reader created it between our incr and add, that
    # reader may be caching pre-commit data under it: bump theirs instead.
    fresh = str(initial_version()).encode()
    ok, added = await node.call("add", lambda: node.client.add(wire, fresh), force=force)
    if not ok:
        return False
    if added:
        return True
    ok, bumped = await node.call("incr", lambda: node.client.incr(wire), force=force)
    return ok and bumped is not None
