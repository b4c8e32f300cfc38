"""Stock figures: the catalogue's fresh figures (`shop.reads.fresh`), ``stock_<id>``.

Cached list pages, product details and order details hold no stock figure;
each product's figure is read at request time from its own entry,
``stock_<id>``, holding ``<stock_version>:<stock>``. ``products.stock_version``
is moved forward by a trigger on every change of ``stock`` (migration
2026_12_01_12), so the row lock that orders two writes of a product also
orders their versions. The rule that keeps them fresh (writers publish after
commit with compare-and-set, readers fill from PostgreSQL under the version
read) is the cached-read layer's (`shop.reads.fresh.FreshFigures`); this module
declares where the committed figures are (`committed`) and names the calls the
writers make (`publish`, `refresh`). Entries expire with the product list's TTL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import ARRAY, BigInteger, Select, any_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shop.cache import Cache
from shop.catalog.models import Product
from shop.reads import FreshFigures

__all__ = [
    "STOCK",
    "Stock",
    "committed",
    "publish",
    "refresh",
    "stock_key",
    "stocks_statement",
]


class Stock(NamedTuple):
    """A product's stock as of its ``version`` (``products.stock_version``)."""

    product_id: int
    stock: int
    version: int


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


STOCK = FreshFigures("stock", committed)
"""Every product's stock figure, in its own stamped entry."""


def stock_key(product_id: int) -> str:
    return STOCK.key(product_id)


async def publish(cache: Cache, rows: Iterable[Stock], ttl: int, *, fill: bool = False) -> None:
    """Store these figures unless a newer one of the same product is there
    (`FreshFigures.publish`; without ``fill``, a writer's)."""
    await STOCK.publish(cache, rows, ttl, fill=fill)


async def refresh(cache: Cache, engine: AsyncEngine, product_ids: Sequence[int], ttl: int) -> None:
    """Publish the committed stock of ``product_ids`` (after a write that did not return it)."""
    await STOCK.refresh(cache, engine, product_ids, ttl)
