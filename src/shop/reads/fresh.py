"""Fresh figures: per-id numbers a cached entry shows but never holds (issue 12 point 5).

A figure that changes with every order (a product's stock) would kill every
cached page that shows it. So entries hold everything but the figure, and each
figure has an entry of its own, ``<prefix>_<id>``, holding
``<version>:<value>`` where the version is the row's own change counter (moved
by the database on every change of the figure, so the row lock that orders two
writes also orders their versions). A domain declares one `FreshFigures` per
kind of figure, with how to read the committed figures from PostgreSQL.

* Writers publish after their commit, before their response leaves
  (`FreshFigures.publish`): `Cache.put_newer` stores a figure only over an
  older version (compare-and-set), so two writes whose publications arrive in
  the wrong order still leave the newer figure.
* Readers (`FreshFigures.read`) take the figures read along with the entry
  (the ``more`` keys of the lookup, named up front by the engine), read what is
  missing from PostgreSQL (one query) and publish that too, under the version
  it was read at: a fill that raced with a write never hides the write.

So a client that wrote sees its own write in its next read, on any API
instance: the write's figure was published before its response, and only a
newer figure can replace it. A publication memcached did not take stays pending
(`MemcachedCache`): this instance reads that key as a miss, hence from
PostgreSQL, until it lands.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from shop.cache import Cache, unstamp

__all__ = ["Figure", "FreshFigures", "Loader"]

Figure = tuple[int, int, int]
"""``(id, value, version)``: a figure as of its row's version."""
Loader = Callable[[AsyncEngine, Sequence[int]], Awaitable[Sequence[Figure]]]
"""The committed figures of these ids, from PostgreSQL (ids with no row are left out)."""


class FreshFigures:
    """One kind of fresh figure: its key prefix and where the committed values live."""

    def __init__(self, prefix: str, load: Loader) -> None:
        self.prefix = prefix
        self.load = load

    def key(self, id_: int) -> str:
        return f"{self.prefix}_{id_}"

    async def read(
        self,
        cache: Cache,
        engine: AsyncEngine,
        ids: Sequence[int],
        ttl: int,
        known: Mapping[str, bytes | None] | None = None,
        keys: Sequence[str] | None = None,
    ) -> dict[int, int]:
        """``{id: value}`` of ``ids``: from their entries (those in ``known`` were
        read already), the rest from PostgreSQL in one query, then published.
        An id with no row is absent from the answer. ``keys``: the ids' keys, if
        the caller has them."""
        known = known or {}
        if keys is None:
            keys = [self.key(id_) for id_ in ids]
        found = known
        if any(key not in known for key in keys):
            unread = [key for key in keys if key not in known]
            found = {**known, **dict(zip(unread, await cache.get_many(*unread), strict=True))}
        values: dict[int, int] = {}
        missing: list[int] = []
        for id_, key in zip(ids, keys, strict=True):
            held = unstamp(found.get(key))
            if held is not None and held[1].isdigit():
                values[id_] = int(held[1])
            else:
                missing.append(id_)
        if missing:
            fresh = await self.load(engine, missing)
            values.update((row[0], row[1]) for row in fresh)
            await self.publish(cache, fresh, ttl, fill=True)
        return values

    async def publish(
        self, cache: Cache, rows: Iterable[Figure], ttl: int, *, fill: bool = False
    ) -> None:
        """Store these figures unless a newer one of the same id is there.

        ``fill``: a reader's figures (best effort); without it, a writer's, which
        this instance keeps trying to deliver (reading them as misses meanwhile).
        """
        entries = {self.key(id_): (version, b"%d" % value) for id_, value, version in rows}
        if entries:
            await cache.put_newer(entries, ttl, fill=fill)

    async def refresh(
        self, cache: Cache, engine: AsyncEngine, ids: Sequence[int], ttl: int
    ) -> None:
        """Publish the committed figures of ``ids`` (after a write that did not return them)."""
        if ids:
            await self.publish(cache, await self.load(engine, ids), ttl)
