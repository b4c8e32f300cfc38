"""Rules of the catalogue: validation, and the staff's writes with their cache invalidation.

Writes change the row in the request's transaction and register, to run after
the commit and before the response leaves, the catalogue's version bumps and,
for a stock change, the publication of the new figure (`shop.catalog.stock`),
so a client that got a 2xx never reads the old value afterwards, from any API
instance. Cached reads are in `shop.catalog.reader`.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shop.cache import ORDERS, PRODUCT_DETAIL, PRODUCTS, Cache
from shop.catalog import schemas, stock
from shop.catalog.models import Product
from shop.catalog.repositories import ProductRepository
from shop.db import after_commit
from shop.errors import InvalidInput, NotFound
from shop.schemas import CENT, MAX_ID, MAX_MONEY, money

__all__ = [
    "ProductNotFound",
    "ProductService",
    "check_amount",
    "check_text",
    "invalid",
    "to_schema",
]


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


def check_text(value: str, field: str) -> list[dict[str, Any]]:
    """Problems with free text PostgreSQL cannot hold: NUL, or a lone UTF-16 surrogate
    (not encodable as UTF-8), as ``errors`` entries."""
    if "\x00" in value:
        return [{"field": field, "message": "must not contain the NUL character"}]
    try:
        value.encode()
    except UnicodeEncodeError:
        return [{"field": field, "message": "must be valid Unicode text"}]
    return []


def check_amount(value: Decimal, field: str, *, allow_zero: bool = False) -> list[dict[str, Any]]:
    """Problems with an amount of money (a price or a price filter), as ``errors`` entries."""
    if not value.is_finite():
        message = "must be a finite decimal number"
    elif value < 0 or (value == 0 and not allow_zero):
        message = "must be at least 0" if allow_zero else "must be greater than 0"
    elif value > MAX_MONEY:
        message = f"must be at most {MAX_MONEY}"
    elif value != value.quantize(CENT):
        message = "must have at most two decimal places"
    else:
        return []
    return [{"field": field, "message": message}]


class ProductService:
    def __init__(self, session: AsyncSession, cache: Cache, ttl: int, engine: AsyncEngine) -> None:
        self.session = session
        self.cache = cache
        self.ttl = ttl
        self.engine = engine

    @functools.cached_property
    def products(self) -> ProductRepository:
        # Built on first use: the console's dashboard only counts stock through it.
        return ProductRepository(session=self.session, auto_refresh=False)

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
        if "stock" in given and given["stock"] != product.stock:
            product.stock = given["stock"]
            self._publish_stock_after_commit(product.id)
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
        async def bump() -> None:
            await self.cache.bump(PRODUCTS)
            await self.cache.bump(PRODUCT_DETAIL)
            # An order's items show their product's updated_at as it is now.
            await self.cache.bump(ORDERS)

        after_commit(self.session, bump)

    def _publish_stock_after_commit(self, product_id: int) -> None:
        after_commit(
            self.session, lambda: stock.refresh(self.cache, self.engine, [product_id], self.ttl)
        )


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
