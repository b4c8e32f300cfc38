"""Rules of the catalogue, and its read-through cache.

Reads (list and detail) are answered from the `PRODUCTS` cache namespace when
possible: the entry is the encoded response body, so a hit touches neither
PostgreSQL nor msgspec. A miss reads PostgreSQL, encodes once, and stores the
bytes under the version seen *before* the read: a write that commits meanwhile
bumps the version, so what this miss stores is never read again.

Writes change the row in the request's transaction and register a version
bump to run after the commit (and before the response leaves), so a client
that got a 2xx never reads the old value afterwards, from any API instance.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from shop.cache import PRODUCTS, Cache, Lookup
from shop.catalog import schemas
from shop.catalog.caching import Encoded
from shop.catalog.models import Product
from shop.catalog.repositories import ProductRepository
from shop.db import after_commit
from shop.errors import InvalidInput, NotFound
from shop.schemas import CENT, Page, money

__all__ = ["ProductNotFound", "ProductService", "check_amount", "invalid", "to_schema"]

MAX_ID = 2**63 - 1
"""Ids are BIGINT; a larger id in a URL names no product (and must not reach asyncpg)."""
MAX_PRICE = Decimal("9999999999.99")
"""The largest amount NUMERIC(12, 2) holds."""

_encoder = msgspec.json.Encoder()


class ProductNotFound(NotFound):
    """No such product."""


def invalid(errors: list[dict[str, Any]]) -> InvalidInput:
    fields = ", ".join(str(error["field"]) for error in errors)
    return InvalidInput(f"Invalid value for {fields}", errors=errors)


def to_schema(product: Product) -> schemas.Product:
    return schemas.Product(
        id=product.id,
        name=product.name,
        description=product.description,
        price=money(product.price),
        stock=product.stock,
        category=schemas.Category(product.category),
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


def check_amount(value: Decimal, field: str, *, allow_zero: bool = False) -> list[dict[str, Any]]:
    """Problems with an amount of money (a price or a price filter), as ``errors`` entries."""
    if not value.is_finite():
        message = "must be a finite decimal number"
    elif value < 0 or (value == 0 and not allow_zero):
        message = "must be at least 0" if allow_zero else "must be greater than 0"
    elif value > MAX_PRICE:
        message = f"must be at most {MAX_PRICE}"
    elif value != value.quantize(CENT):
        message = "must have at most two decimal places"
    else:
        return []
    return [{"field": field, "message": message}]


class ProductService:
    def __init__(self, session: AsyncSession, cache: Cache, ttl: int) -> None:
        self.session = session
        self.cache = cache
        self.ttl = ttl

    @functools.cached_property
    def products(self) -> ProductRepository:
        # Built on first use: a cache hit never needs it.
        return ProductRepository(session=self.session, auto_refresh=False)

    # -- reads, through the cache ----------------------------------------------------

    async def list_encoded(
        self, query: schemas.ProductQuery, *, also_under: str | None = None
    ) -> Encoded:
        """The list response for ``query``, encoded, from the cache or PostgreSQL.

        ``also_under``: a second cache key (the raw query string's) to store it under.
        """
        lookup = await self.cache.lookup(PRODUCTS, query.normalised())
        if lookup.value is not None and (hit := Encoded.unpack(lookup.value)) is not None:
            if also_under is not None:
                await self.cache.set(also_under, lookup.value, self.ttl)
            return hit
        rows, total = await self.products.page(query)
        page = Page(
            items=[to_schema(p) for p in rows], total=total, limit=query.limit, offset=query.offset
        )
        encoded = Encoded.of(_encoder.encode(page))
        packed = encoded.pack()
        if lookup.key is not None:
            await self.cache.set(lookup.key, packed, self.ttl)
        if also_under is not None:
            await self.cache.set(also_under, packed, self.ttl)
        return encoded

    async def detail_encoded(self, product_id: int, lookup: Lookup | None = None) -> Encoded:
        """``lookup``: the detail's cache lookup if the caller already made it (a route's hook)."""
        if not 0 < product_id <= MAX_ID:
            raise ProductNotFound(product_id=product_id)
        if lookup is None:
            lookup = await self.cache.lookup(PRODUCTS, f"detail_{product_id}")
        if lookup.value is not None and (hit := Encoded.unpack(lookup.value)) is not None:
            return hit
        product = await self.products.get_live(product_id)
        if product is None:
            raise ProductNotFound(product_id=product_id)
        encoded = Encoded.of(_encoder.encode(to_schema(product)))
        if lookup.key is not None:
            await self.cache.set(lookup.key, encoded.pack(), self.ttl)
        return encoded

    # -- writes (staff) ----------------------------------------------------------------

    async def create(self, data: schemas.ProductCreate) -> Product:
        name = _clean_fields(name=data.name, price=data.price)
        product = Product(
            name=name,
            description=data.description,
            price=data.price.quantize(CENT),
            stock=data.stock,
            category=data.category.value,
        )
        await self.products.add(product)
        self._invalidate_after_commit()
        return product

    async def replace(self, product_id: int, data: schemas.ProductCreate) -> Product:
        """PUT: every field is given."""
        everything = schemas.ProductUpdate(
            name=data.name,
            description=data.description,
            price=data.price,
            stock=data.stock,
            category=data.category,
        )
        return await self.update(product_id, everything)

    async def update(self, product_id: int, data: schemas.ProductUpdate) -> Product:
        """PATCH: only the fields given change.

        The row is locked so that a concurrent checkout (which locks the same
        row to decrement stock) sees either the old or the new product, never
        a mix, and cannot buy a product archived under it.
        """
        product = await self._get_for_update(product_id)
        changes = msgspec.structs.asdict(data)
        given = {field: value for field, value in changes.items() if value is not msgspec.UNSET}
        name = _clean_fields(name=given.get("name"), price=given.get("price"))
        if name is not None:
            product.name = name
        if "description" in given:
            product.description = given["description"]
        if "price" in given:
            product.price = given["price"].quantize(CENT)
        if "stock" in given:
            product.stock = given["stock"]
        if "category" in given:
            product.category = given["category"].value
        if self.session.is_modified(product):
            await self.session.flush()
            self._invalidate_after_commit()
        return product

    async def archive(self, product_id: int) -> None:
        """DELETE: the product leaves the catalogue; orders keep their copy of name and price."""
        product = await self._get_for_update(product_id)
        product.archived = True
        await self.session.flush()
        self._invalidate_after_commit()

    async def restore(self, product_id: int) -> Product:
        """Undo an archive: the product is back in the catalogue with its price and stock."""
        product = None
        if 0 < product_id <= MAX_ID:
            product = await self.products.get_any(product_id, for_update=True)
        if product is None:
            raise ProductNotFound(product_id=product_id)
        if product.archived:
            product.archived = False
            await self.session.flush()
            self._invalidate_after_commit()
        return product

    # -- staff reads (the console), straight from PostgreSQL -------------------------

    async def staff_page(
        self,
        query: schemas.ProductQuery,
        *,
        archived: bool = False,
        stock_at_most: int | None = None,
    ) -> tuple[list[Product], int]:
        rows, total = await self.products.staff_page(
            query, archived=archived, stock_at_most=stock_at_most
        )
        return list(rows), total

    async def get_for_staff(self, product_id: int) -> Product:
        """A product, archived or not."""
        product = await self.products.get_any(product_id) if 0 < product_id <= MAX_ID else None
        if product is None:
            raise ProductNotFound(product_id=product_id)
        return product

    async def stock_counts(self, low: int) -> tuple[int, int]:
        return await self.products.stock_counts(low)

    async def _get_for_update(self, product_id: int) -> Product:
        product = None
        if 0 < product_id <= MAX_ID:
            product = await self.products.get_live(product_id, for_update=True)
        if product is None:
            raise ProductNotFound(product_id=product_id)
        return product

    def _invalidate_after_commit(self) -> None:
        after_commit(self.session, lambda: self.cache.bump(PRODUCTS))


def _clean_fields(*, name: str | None, price: Decimal | None) -> str | None:
    """Validate what msgspec cannot express; returns the name without surrounding blanks."""
    errors: list[dict[str, Any]] = []
    if name is not None:
        name = name.strip()
        if not name:
            errors.append({"field": "name", "message": "must not be blank"})
    if price is not None:
        errors += check_amount(price, "price")
    if errors:
        raise invalid(errors)
    return name
