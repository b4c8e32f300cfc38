"""`Cache.put_newer` on one memcached server: compare-and-set on the values' stamps.

One ``gets`` of every key, then, concurrently, an ``add`` for each key that is
absent and a ``cas`` for each that holds an older stamp (a newer or equal one
is left alone). An ``add`` or ``cas`` that loses a race (another writer got
there between the ``gets`` and it) is tried again from a new ``gets``, up to
`CAS_ATTEMPTS` rounds. The caller (`shop.cache.memcached.MemcachedCache`)
decides what to do with the keys not delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from shop.cache.base import stamped, unstamp
from shop.cache.node import Node

__all__ = ["CAS_ATTEMPTS", "put_all", "put_on"]

CAS_ATTEMPTS = 3
"""Rounds of ``gets`` then ``add``/``cas`` before the entry is left undelivered."""

Entries = dict[str, tuple[int, bytes]]


async def put_all(
    entries: Mapping[str, tuple[int, bytes]],
    ttl: int,
    force: bool,
    owner: Callable[[str], Node],
    wire: Callable[[str], bytes],
) -> list[str]:
    """``entries`` on the servers that hold them (``owner``), concurrently; the keys
    not delivered."""
    groups: dict[Node, Entries] = {}
    for key, entry in entries.items():
        groups.setdefault(owner(key), {})[key] = entry
    missed = await asyncio.gather(
        *(
            put_on(node, {wire(key): key for key in group}, group, ttl, force)
            for node, group in groups.items()
        )
    )
    return [key for keys in missed for key in keys]


async def put_on(
    node: Node, wires: dict[bytes, str], entries: Entries, ttl: int, force: bool
) -> list[str]:
    """``entries`` (``key: (stamp, value)``, ``wires``: each key on the wire, to
    its key) on ``node``; the keys not delivered."""
    todo = entries
    for _ in range(CAS_ATTEMPTS):
        failed, lost = await _round(node, wires, todo, ttl, force)
        if failed:
            return failed + list(lost)
        if not lost:
            return []
        todo = lost
    return list(todo)


async def _round(
    node: Node, all_wires: dict[bytes, str], entries: Entries, ttl: int, force: bool
) -> tuple[list[str], Entries]:
    """One ``gets`` of ``entries``' keys, then ``add`` or ``cas`` each one that is
    absent or older: ``(keys whose server failed, entries that lost a race)``."""
    wires = {wire: key for wire, key in all_wires.items() if key in entries}
    ok, held = await node.call("gets", lambda: node.client.gets_values(*wires), force=force)
    if not ok or held is None:
        return list(entries), {}
    values, tokens = held

    async def one(wire: bytes, stamp: int, value: bytes) -> bool | None:
        """True: delivered (or a newer value is there); False: lost a race; None: failed."""
        new = stamped(stamp, value)
        token = tokens.get(wire)
        if wire not in values or token is None:
            ok, done = await node.call(
                "add", lambda: node.client.add(wire, new, exptime=ttl), force=force
            )
        else:
            current = unstamp(values[wire])
            if current is not None and current[0] >= stamp:
                return True
            ok, done = await node.call(
                "cas", lambda: node.client.cas(wire, new, token, exptime=ttl), force=force
            )
        return bool(done) if ok else None

    outcomes = await asyncio.gather(*(one(wire, *entries[key]) for wire, key in wires.items()))
    failed: list[str] = []
    lost: Entries = {}
    for key, outcome in zip(wires.values(), outcomes, strict=True):
        if outcome is None:
            failed.append(key)
        elif outcome is False:
            lost[key] = entries[key]
    return failed, lost
