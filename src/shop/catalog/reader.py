"""The catalogue as clients read it, through the cache.

A cached list page (`PRODUCTS` namespace, key ``products_list_v<version>_<query>``)
holds the catalogue fields of its products (everything but ``stock``), the
count and whether a next page follows; a product detail (`PRODUCT_DETAIL`,
``product_detail_v<version>_<id>``) holds the product's catalogue fields.
Neither holds a stock figure or a URL: stock comes from the per-product entries
of `shop.catalog.stock` (read in the same memcached round trip when the
product ids are known up front), ``next``/``previous`` from the request. So
the catalogue versions cover what changes rarely: both are bumped when a
product is created, edited or archived, the list's also when an order or a
cancellation moves a product's stock across zero (which changes ``in_stock``
membership and the counts). An order that leaves stock above zero bumps
nothing; it publishes its products' new stock figures.

A miss reads PostgreSQL once per key and process (`shop.reads.fill`) and
stores the entry under the version seen *before* the read: a write that
commits meanwhile bumps the version, so what this miss stores is never read
again.

Writes (`shop.catalog.services`) bump the versions and publish the new stock
figures after their commit and before their response leaves, so a client that
got a 2xx never reads the old value afterwards, from any API instance.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shop.cache import PRODUCT_DETAIL, PRODUCTS, Cache, Lookup
from shop.catalog import schemas, stock
from shop.catalog.caching import Encoded
from shop.catalog.models import Product
from shop.catalog.repositories import ProductRepository
from shop.catalog.services import ProductNotFound
from shop.pagination import Count, Window, encode_list
from shop.reads import fill
from shop.schemas import MAX_ID, money

__all__ = [
    "CatalogueReader",
    "decode_entry",
    "detail_lookup",
    "render_list",
    "serve_cached_detail",
    "serve_cached_list",
]

_encoder = msgspec.json.Encoder()
_entry_encoder = msgspec.msgpack.Encoder()
_entry_decoder = msgspec.msgpack.Decoder(schemas.CatalogueEntry)
_row_decoder = msgspec.msgpack.Decoder(schemas.CatalogueRow)

Connection = ASGIConnection[Any, Any, Any, Any]


def decode_entry(raw: bytes) -> schemas.CatalogueEntry | None:
    """A cached list page; None for bytes that are not one (a miss)."""
    try:
        return _entry_decoder.decode(raw)
    except msgspec.DecodeError:
        return None


def detail_lookup(product_id: int) -> tuple[str, str, list[str]]:
    """What a product detail reads from the cache: its catalogue entry and its stock."""
    return PRODUCT_DETAIL, str(product_id), [stock.stock_key(product_id)]


def render_list(
    stocks: dict[int, int], connection: Connection, page: int | None, entry: schemas.CatalogueEntry
) -> Encoded:
    """The envelope of a cached page: these stock figures, links from this request."""
    results = [
        schemas.Product(
            id=row.id,
            name=row.name,
            description=row.description,
            price=row.price,
            stock=stocks.get(row.id, 0),
            category=row.category,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in entry.rows
    ]
    at = Window(entry.limit, entry.offset, page)
    count = Count(entry.count, entry.count_is_estimate)
    return Encoded.of(encode_list(connection, at, count, results, entry.has_next))


async def serve_cached_list(
    cache: Cache,
    engine: AsyncEngine,
    ttl: int,
    connection: Connection,
    page: int | None,
    suffix: str,
    lookup: Lookup,
) -> Encoded | None:
    """The response to a list read from a hit of ``lookup`` (None: not a hit): the
    page's stock from the entries read with it (`shop.catalog.stock`), the rest now."""
    if lookup.value is None:
        return None
    entry = decode_entry(lookup.value)
    if entry is None:
        return None
    ids = [row.id for row in entry.rows]
    stocks = await stock.read(cache, engine, ids, ttl, known=lookup.more)
    stock.remember(suffix, ids)
    return render_list(stocks, connection, page, entry)


class CatalogueReader:
    """Product lists and details for clients: catalogue fields from the cache (or
    PostgreSQL, one build per key and process), stock figures from their entries."""

    def __init__(self, session: AsyncSession, cache: Cache, ttl: int, engine: AsyncEngine) -> None:
        self.session = session
        self.cache = cache
        self.ttl = ttl
        self.engine = engine

    @functools.cached_property
    def products(self) -> ProductRepository:
        # Built on first use: a cache hit never needs it.
        return ProductRepository(session=self.session, auto_refresh=False)

    async def list_page(
        self,
        connection: Connection,
        query: schemas.ProductQuery,
        at: Window,
        threshold: int,
        *,
        raw: tuple[str, Lookup | None] | None = None,
    ) -> Encoded:
        """The list response for ``query``: catalogue fields from the cache (or
        PostgreSQL, one build per key and process), stock figures from their entries.

        ``raw``: the suffix of the request's raw query string and its lookup; the
        entry is stored under that key too, and the page's ids remembered for it.
        """
        lookup = await self.cache.lookup(PRODUCTS, query.normalised())
        entry = decode_entry(lookup.value) if lookup.value is not None else None
        raw_bytes = lookup.value
        stocks: dict[int, int] | None = None
        if entry is None:
            built: list[stock.Stock] = []

            async def build() -> bytes:
                return await self._build_entry(query, threshold, built)

            raw_bytes, built_here = await fill(self.cache, lookup, build, self.ttl)
            entry = decode_entry(raw_bytes)
            if entry is None:  # cannot happen: we encoded it
                raise RuntimeError("undecodable list entry")
            if built_here:  # read in this very request: fresh, and worth publishing
                stocks = {row.product_id: row.stock for row in built}
                await stock.publish(self.cache, built, self.ttl, fill=True)
        ids = [row.id for row in entry.rows]
        if stocks is None:
            stocks = await stock.read(self.cache, self.engine, ids, self.ttl)
        if raw is not None:
            suffix, raw_lookup = raw
            stock.remember(suffix, ids)
            if raw_lookup is not None and raw_lookup.key is not None and raw_bytes is not None:
                await self.cache.set(raw_lookup.key, raw_bytes, self.ttl)
        return render_list(stocks, connection, at.page, entry)

    async def _build_entry(
        self, query: schemas.ProductQuery, threshold: int, stocks: list[stock.Stock]
    ) -> bytes:
        rows, has_next, count = await self.products.page(query, threshold)
        stocks.extend(stock.Stock(p.id, p.stock, p.stock_version) for p in rows)
        entry = schemas.CatalogueEntry(
            count=count.value,
            count_is_estimate=count.estimate,
            has_next=has_next,
            limit=query.limit,
            offset=query.offset,
            rows=[_row(p) for p in rows],
        )
        return _entry_encoder.encode(entry)

    async def detail_encoded(self, product_id: int, lookup: Lookup | None = None) -> Encoded:
        """One live product: catalogue fields from its cached entry (or PostgreSQL,
        one build per key and process), stock from its own entry.

        ``lookup``: the detail's lookup if it was read already (`detail_lookup`).
        """
        if not 0 < product_id <= MAX_ID:
            raise ProductNotFound(product_id=product_id)
        if lookup is None:
            lookup = await self.cache.lookup(*detail_lookup(product_id))
        row = _decode_row(lookup.value) if lookup.value is not None else None
        stocks: dict[int, int] | None = None
        if row is None:
            built: list[stock.Stock] = []

            async def build() -> bytes:
                product = await self.products.get_live(product_id)
                if product is None:
                    raise ProductNotFound(product_id=product_id)
                built.append(stock.Stock(product.id, product.stock, product.stock_version))
                return _entry_encoder.encode(_row(product))

            raw, built_here = await fill(self.cache, lookup, build, self.ttl)
            row = _decode_row(raw)
            if row is None:  # cannot happen: we encoded it
                raise RuntimeError("undecodable product entry")
            if built_here:
                stocks = {item.product_id: item.stock for item in built}
                await stock.publish(self.cache, built, self.ttl, fill=True)
        if stocks is None:
            stocks = await stock.read(self.cache, self.engine, [product_id], self.ttl, lookup.more)
        if product_id not in stocks:  # gone since the entry was cached: cannot be archived
            raise ProductNotFound(product_id=product_id)
        return _render_detail(row, stocks[product_id])


async def serve_cached_detail(
    cache: Cache, engine: AsyncEngine, ttl: int, product_id: int, lookup: Lookup
) -> Encoded | None:
    """The response to a product detail from a hit of ``lookup`` (None: not a hit): its
    stock from the entry read with it (`shop.catalog.stock`)."""
    row = _decode_row(lookup.value) if lookup.value is not None else None
    if row is None:
        return None
    stocks = await stock.read(cache, engine, [product_id], ttl, lookup.more)
    if product_id not in stocks:
        return None  # the handler answers 404
    return _render_detail(row, stocks[product_id])


def _render_detail(row: schemas.CatalogueRow, in_stock: int) -> Encoded:
    product = schemas.Product(
        id=row.id,
        name=row.name,
        description=row.description,
        price=row.price,
        stock=in_stock,
        category=row.category,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
    return Encoded.of(_encoder.encode(product))


def _row(product: Product) -> schemas.CatalogueRow:
    return schemas.CatalogueRow(
        id=product.id,
        name=product.name,
        description=product.description,
        price=money(product.price),
        category=schemas.Category(product.category),
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


def _decode_row(raw: bytes) -> schemas.CatalogueRow | None:
    try:
        return _row_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
