"""Stock figures, cached per product and never older than the reader's own order.

Cached list pages and product details hold the catalogue fields only (see
`shop.catalog.services`); the stock figure of each product shown is read at
request time from its own entry, ``stock_<id>``, holding
``<stock_version>:<stock>``. ``products.stock_version`` is moved forward by a
trigger on every change of ``stock`` (migration 2026_12_01_12), so the row
lock that orders two writes of a product also orders their versions.

* Writers publish after their commit, before their response leaves: the
  checkout statement and a cancellation return each product's new stock and
  version, a staff edit reads them back (`refresh`). `Cache.put_newer` stores
  an entry only over an older version (compare-and-set), so two orders whose
  publications arrive in the wrong order still leave the newer figure.
* Readers take the entries in the round trip that reads the page or detail
  (`shop.prefetch`: a list's product ids are remembered per query in this
  process, `remember`/`expected`), read what is missing from PostgreSQL (one
  primary-key query) and publish that too, under the version it was read at:
  a fill that raced with an order never hides the order's decrement.

So a client that placed an order sees its decrement in its next read, on any
API instance: the order's figure was published before its 201, and only a
newer figure can replace it. A publication memcached did not take stays
pending (`MemcachedCache`): this instance reads that product's stock from
PostgreSQL until it lands. Entries expire with the product list's TTL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from sqlalchemy import ARRAY, BigInteger, Select, any_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shop.cache import Cache, unstamp
from shop.catalog.models import Product

__all__ = [
    "Stock",
    "committed",
    "expected",
    "publish",
    "read",
    "refresh",
    "remember",
    "stock_key",
    "stocks_statement",
]

_REMEMBERED_QUERIES = 4096
"""Lists whose product ids this process remembers (a few hundred bytes each)."""
_remembered: dict[str, tuple[int, ...]] = {}


class Stock(NamedTuple):
    """A product's stock as of its ``version`` (``products.stock_version``)."""

    product_id: int
    stock: int
    version: int


def stock_key(product_id: int) -> str:
    return f"stock_{product_id}"


def remember(suffix: str, product_ids: Sequence[int]) -> None:
    """The ids shown for a list query, so its next read fetches their stock with the page."""
    if suffix not in _remembered and len(_remembered) >= _REMEMBERED_QUERIES:
        _remembered.pop(next(iter(_remembered)))  # the oldest: dicts keep insertion order
    _remembered[suffix] = tuple(product_ids)


def expected(suffix: str) -> list[str]:
    """The stock keys of the products this list showed last time (read with the page)."""
    return [stock_key(product_id) for product_id in _remembered.get(suffix, ())]


async def read(
    cache: Cache,
    engine: AsyncEngine,
    product_ids: Sequence[int],
    ttl: int,
    known: Mapping[str, bytes | None] | None = None,
) -> dict[int, int]:
    """``{id: stock}`` of ``product_ids``: from their entries (those in ``known``
    were read already), the rest from PostgreSQL in one query, then published."""
    known = known or {}
    keys = [stock_key(product_id) for product_id in product_ids]
    unread = [key for key in keys if key not in known]
    found = dict(known)
    if unread:
        found.update(zip(unread, await cache.get_many(*unread), strict=True))
    stocks: dict[int, int] = {}
    missing: list[int] = []
    for product_id, key in zip(product_ids, keys, strict=True):
        held = unstamp(found.get(key))
        if held is not None and held[1].isdigit():
            stocks[product_id] = int(held[1])
        else:
            missing.append(product_id)
    if missing:
        fresh = await committed(engine, missing)
        stocks.update((row.product_id, row.stock) for row in fresh)
        await publish(cache, fresh, ttl, fill=True)
    return stocks


async def publish(cache: Cache, rows: Iterable[Stock], ttl: int, *, fill: bool = False) -> None:
    """Store these figures unless a newer one of the same product is there.

    ``fill``: a reader's figures (best effort); without it, a writer's, which
    this instance keeps trying to deliver (reading them as misses meanwhile).
    """
    entries = {stock_key(row.product_id): (row.version, b"%d" % row.stock) for row in rows}
    if entries:
        await cache.put_newer(entries, ttl, fill=fill)


async def refresh(cache: Cache, engine: AsyncEngine, product_ids: Sequence[int], ttl: int) -> None:
    """Publish the committed stock of ``product_ids`` (after a write that did not return it)."""
    if product_ids:
        await publish(cache, await committed(engine, product_ids), ttl)


async def committed(engine: AsyncEngine, product_ids: Sequence[int]) -> list[Stock]:
    """The committed stock of ``product_ids`` from PostgreSQL."""
    # An autocommit connection: the one statement is its own snapshot, one round
    # trip instead of three (BEGIN, SELECT, ROLLBACK), outside any request transaction.
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        result = await autocommit.execute(stocks_statement(product_ids))
        return [Stock(*row) for row in result]


def stocks_statement(product_ids: Sequence[int]) -> Select[int, int, int]:
    ids = bindparam("ids", list(product_ids), type_=ARRAY(BigInteger))
    return select(Product.id, Product.stock, Product.stock_version).where(Product.id == any_(ids))
