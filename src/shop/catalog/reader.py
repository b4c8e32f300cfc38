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

Both reads are declared here once (`LIST`, `DETAIL`) for the cached-read layer
(`shop.reads`), which does the rest: the lookup with the caller's snapshot,
the hit before the handler, the miss read once per key and process and stored
under the version seen *before* the read, the fresh stock figures.

Writes (`shop.catalog.services`) bump the versions and publish the new stock
figures after their commit and before their response leaves, so a client that
got a 2xx never reads the old value afterwards, from any API instance.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any, cast

import msgspec
from litestar.connection import ASGIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shop.cache import PRODUCT_DETAIL, PRODUCTS, Cache, Lookup
from shop.catalog import schemas, stock
from shop.catalog.models import Product
from shop.catalog.repositories import ProductRepository
from shop.catalog.services import ProductNotFound
from shop.pagination import (
    ListPage,
    Window,
    check_page,
    links,
    page_number,
    refuse_repeated,
)
from shop.reads import Built, CachedRead, Encoded, read_through
from shop.schemas import MAX_ID, money
from shop.settings import Settings

__all__ = ["CACHE_CONTROL", "DETAIL", "LIST", "CatalogueReader"]

_encoder = msgspec.json.Encoder()
_entry_encoder = msgspec.msgpack.Encoder()
_entry_decoder = msgspec.msgpack.Decoder(schemas.CatalogueEntry)
_row_decoder = msgspec.msgpack.Decoder(schemas.CatalogueRow)

Connection = ASGIConnection[Any, Any, Any, Any]

CACHE_CONTROL = "private, no-cache"
"""Clients may keep a copy but must revalidate it (cheap: a 304); products need a token."""


def _decode_entry(raw: bytes) -> schemas.CatalogueEntry | None:
    """A cached list page; None for bytes that are not one (a miss)."""
    try:
        return _entry_decoder.decode(raw)
    except msgspec.DecodeError:
        return None


def _list_suffix(connection: Connection) -> str:
    # The pairs, as sent, in sorted order: the same query in another order
    # shares the entry, without decoding and re-encoding every pair. A
    # parameter given twice is refused before this key is used (the hook), so
    # the key means exactly the query the handler validates. Entries are stored
    # under it only once the handler has validated that exact query, so a hit
    # can only be a query that was valid before.
    pairs = connection.scope["query_string"].decode("latin-1").split("&")
    return "raw:" + "&".join(sorted(pairs))


_pages_of: dict[bytes, int | None] = {}
"""Query string -> its page number, for query strings already checked (no repeats)."""


def _list_context(connection: Connection) -> tuple[Connection, int | None]:
    # Refused before any cached byte: a parameter given twice (400). A query
    # string that passed once passes again: its page number is kept.
    query_string: bytes = connection.scope["query_string"]
    try:
        return connection, _pages_of[query_string]
    except KeyError:
        page = page_number(refuse_repeated(connection))
    if len(_pages_of) >= _LINKS_KEPT:
        _pages_of.pop(next(iter(_pages_of)))  # the oldest: dicts keep insertion order
    _pages_of[query_string] = page
    return connection, page


_LINKS_KEPT = 4096
"""Query shapes whose links (and query strings whose page numbers) this process keeps."""
_links_of: dict[tuple[Any, ...], tuple[str | None, str | None]] = {}


def _links(connection: Connection, at: Window, has_next: bool) -> tuple[str | None, str | None]:
    """`links`, built once per query shape: keyed by everything the request's URL is
    made of (`URL.from_scope`: scheme, server, paths, query string, Host)."""
    scope = connection.scope
    key = (
        scope.get("scheme"),
        scope.get("server"),
        scope.get("root_path"),
        scope["path"],
        scope.get("raw_path"),
        scope["query_string"],
        connection.headers.get("host"),
        at,
        has_next,
    )
    found = _links_of.get(key)
    if found is None:
        if len(_links_of) >= _LINKS_KEPT:
            _links_of.pop(next(iter(_links_of)))  # the oldest: dicts keep insertion order
        found = _links_of[key] = links(connection, at, has_next)
    return found


def _digest(encoded: bytes) -> bytes:
    return hashlib.blake2b(encoded, digest_size=12).digest()


def _render_list(
    context: tuple[Connection, int | None],
    entry: schemas.CatalogueEntry,
    stocks: Mapping[int, int],
) -> bytes | Encoded:
    """The envelope of a cached page: these stock figures spliced into the products'
    pre-encoded JSON, links from this request (404 for a page past the end).

    The ETag is a hash of what the body is made of (the entry's digest, the
    figures, the links) rather than of its 6 KB: the same content still has the
    same tag across version bumps, and any change to the body changes it.
    """
    connection, page = context
    at = Window(entry.limit, entry.offset, page)
    check_page(at, len(entry.rows))
    following, previous = _links(connection, at, entry.has_next)
    figures = [b"%d" % stocks.get(row.id, 0) for row in entry.rows]
    results = b",".join(
        [row.head + figure + row.tail for row, figure in zip(entry.rows, figures, strict=True)]
    )
    envelope: ListPage[Any] = ListPage(
        count=entry.count,
        next=following,
        previous=previous,
        results=cast("list[Any]", msgspec.Raw(b"[" + results + b"]")),
        count_is_estimate=True if entry.count_is_estimate else msgspec.UNSET,
    )
    body = _encoder.encode(envelope)
    if not entry.digest:  # cannot happen: every entry is built with one
        return body
    made_of = b"\n".join(
        [entry.digest, b",".join(figures), (following or "").encode(), (previous or "").encode()]
    )
    return Encoded(body, f'W/"{hashlib.blake2b(made_of, digest_size=12).hexdigest()}"')


def _products_ttl(settings: Settings) -> int:
    return settings.cache.products_ttl


LIST: CachedRead[schemas.CatalogueEntry] = CachedRead(
    name="products_list",
    namespace=PRODUCTS,
    suffix=_list_suffix,
    decode=_decode_entry,
    figures=stock.STOCK,
    shows=lambda entry: [row.id for row in entry.rows],
    render=_render_list,
    entry_ttl=_products_ttl,
    figures_ttl=_products_ttl,
    context=_list_context,
    conditional=True,
    cache_control=CACHE_CONTROL,
)
"""A product list page, keyed by the raw query string (its pairs sorted); the
handler's miss stores under the normalised query too (`CatalogueReader.list_page`)."""


def _detail_suffix(connection: Connection) -> str | None:
    product_id = connection.path_params.get("product_id")
    if not isinstance(product_id, int) or not 0 < product_id <= MAX_ID:
        return None
    return str(product_id)


def _render_detail(_: object, row: schemas.CatalogueRow, stocks: Mapping[int, int]) -> bytes | None:
    in_stock = stocks.get(row.id)
    if in_stock is None:  # gone since the entry was cached: cannot be archived
        return None
    return row.head + b"%d" % in_stock + row.tail


DETAIL: CachedRead[schemas.CatalogueRow] = CachedRead(
    name="product_detail",
    namespace=PRODUCT_DETAIL,
    suffix=_detail_suffix,
    decode=lambda raw: _decode_row(raw),
    figures=stock.STOCK,
    shows=lambda row: [row.id],
    render=_render_detail,
    entry_ttl=_products_ttl,
    figures_ttl=_products_ttl,
    ids_of=lambda suffix: [int(suffix)],
    conditional=True,
    cache_control=CACHE_CONTROL,
)
"""A product detail, keyed by its id; its stock entry is read with it."""


class CatalogueReader:
    """Product lists and details for clients: catalogue fields from the cache (or
    PostgreSQL, one build per key and process), stock figures from their entries."""

    def __init__(
        self, session: AsyncSession, cache: Cache, settings: Settings, engine: AsyncEngine
    ) -> None:
        self.session = session
        self.cache = cache
        self.settings = settings
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
        raw: tuple[str, Lookup | None],
    ) -> bytes | Encoded:
        """The list body for ``query`` (`LIST`): the entry of its normalised query
        from the cache, else from PostgreSQL (one build per key and process).

        ``raw``: the route's suffix (the raw query string) and its lookup; the
        entry is stored under that key too.
        """
        lookup = await self.cache.lookup(PRODUCTS, query.normalised())

        async def build() -> Built[schemas.CatalogueEntry]:
            built: list[stock.Stock] = []
            encoded = await self._build_entry(query, threshold, built)
            entry = _decode_entry(encoded)
            if entry is None:  # cannot happen: we encoded it
                raise RuntimeError("undecodable list entry")
            entry = msgspec.structs.replace(entry, digest=_digest(encoded))
            encoded = _entry_encoder.encode(entry)
            fresh = {row.product_id: row.stock for row in built}
            return Built(encoded, entry, fresh, built)

        suffix, also = raw
        body = await read_through(
            LIST,
            self.cache,
            self.engine,
            self.settings,
            lookup,
            build,
            context=(connection, at.page),
            user=None,
            suffix=suffix,
            also=also,
        )
        assert body is not None  # a list always renders
        return body

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

    async def detail(self, product_id: int, lookup: Lookup | None = None) -> bytes | Encoded:
        """One live product (`DETAIL`): catalogue fields from its cached entry (or
        PostgreSQL, one build per key and process), stock from its own entry.

        ``lookup``: the route's lookup if it was read already.
        """
        if not 0 < product_id <= MAX_ID:
            raise ProductNotFound(product_id=product_id)
        if lookup is None:
            suffix = str(product_id)
            lookup = await self.cache.lookup(PRODUCT_DETAIL, suffix, DETAIL.more(suffix))

        async def build() -> Built[schemas.CatalogueRow]:
            product = await self.products.get_live(product_id)
            if product is None:
                raise ProductNotFound(product_id=product_id)
            row = _row(product)
            fresh = stock.Stock(product.id, product.stock, product.stock_version)
            return Built(_entry_encoder.encode(row), row, {product.id: product.stock}, [fresh])

        body = await read_through(
            DETAIL,
            self.cache,
            self.engine,
            self.settings,
            lookup,
            build,
            context=None,
            user=None,
            suffix=str(product_id),
        )
        if body is None:  # gone since the entry was cached: cannot be archived
            raise ProductNotFound(product_id=product_id)
        return body


_STOCK = b',"stock":'


def _row(product: Product) -> schemas.CatalogueRow:
    """The product's JSON, encoded once when the entry is built, split around its stock."""
    body = _encoder.encode(
        schemas.Product(
            id=product.id,
            name=product.name,
            description=product.description,
            price=money(product.price),
            stock=0,
            category=schemas.Category(product.category),
            created_at=product.created_at,
            updated_at=product.updated_at,
        )
    )
    # The last one: a name or description holding these bytes has its quotes escaped.
    at = body.rindex(_STOCK + b"0,") + len(_STOCK)
    return schemas.CatalogueRow(id=product.id, head=body[:at], tail=body[at + 1 :])


def _decode_row(raw: bytes) -> schemas.CatalogueRow | None:
    try:
        return _row_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
