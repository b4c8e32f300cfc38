"""Which memcached server holds a key: rendezvous (highest random weight) hashing.

Every server gets a weight per key, a keyed hash of the key; the key lives on
the heaviest. Adding or removing a server moves only the keys it wins or held
(about 1/N of them), and every process computes the same placement from the
server list alone. A server that is down keeps its keys: they miss until it
answers again (moving them would let two servers hold diverging copies).

Version counters are replicated on the two heaviest servers (`replicas`), so a
namespace stays cacheable while one server is down; see `shop.cache.memcached`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = ["Ring"]

N = TypeVar("N")


class Ring(Generic[N]):
    """Places keys on ``nodes``, named by ``names`` (``host:port``: the same in every process)."""

    def __init__(self, nodes: Sequence[N], names: Sequence[str]) -> None:
        if not nodes or len(nodes) != len(names):
            raise ValueError("a ring needs one name per node, and at least one node")
        self._nodes = tuple(nodes)
        self._salts = tuple(
            hashlib.blake2b(name.encode(), digest_size=16).digest() for name in names
        )

    @property
    def nodes(self) -> tuple[N, ...]:
        return self._nodes

    def _weights(self, key: str) -> list[tuple[int, int]]:
        data = key.encode()
        return [
            (int.from_bytes(hashlib.blake2b(data, key=salt, digest_size=8).digest()), index)
            for index, salt in enumerate(self._salts)
        ]

    def owner(self, key: str) -> N:
        """The server holding ``key``."""
        if len(self._nodes) == 1:
            return self._nodes[0]
        return self._nodes[max(self._weights(key))[1]]

    def replicas(self, key: str, count: int = 2) -> tuple[N, ...]:
        """The ``count`` heaviest servers for ``key``, heaviest first."""
        if len(self._nodes) == 1:
            return self._nodes
        ranked = sorted(self._weights(key), reverse=True)[:count]
        return tuple(self._nodes[index] for _, index in ranked)
