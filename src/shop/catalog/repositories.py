"""Queries of the catalogue. Archived products are invisible to every query here."""

from __future__ import annotations

from collections.abc import Sequence

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import ColumnElement, func, select

from shop.catalog.models import Product
from shop.catalog.schemas import Ordering, ProductQuery

__all__ = ["ProductRepository"]

_ORDER_COLUMNS = {
    Ordering.PRICE: Product.price,
    Ordering.PRICE_DESC: Product.price,
    Ordering.NAME: Product.name,
    Ordering.NAME_DESC: Product.name,
    Ordering.CREATED_AT: Product.created_at,
    Ordering.CREATED_AT_DESC: Product.created_at,
}


class ProductRepository(SQLAlchemyAsyncRepository[Product]):
    model_type = Product

    async def page(self, query: ProductQuery) -> tuple[Sequence[Product], int]:
        """One page of live products and how many match in all, in one statement.

        The total rides along as a window count; only a page past the end
        (no rows to carry it) costs a second query.
        """
        conditions = _conditions(query)
        column = _ORDER_COLUMNS[query.ordering]
        descending = query.ordering.value.startswith("-")
        # id breaks ties in the same direction, so pages are stable and one
        # index (column, id) serves both directions.
        order = (
            (column.desc(), Product.id.desc()) if descending else (column.asc(), Product.id.asc())
        )
        statement = (
            select(Product, func.count().over().label("total"))
            .where(*conditions)
            .order_by(*order)
            .limit(query.limit)
            .offset(query.offset)
        )
        rows = (await self.session.execute(statement)).all()
        if rows:
            return [row[0] for row in rows], int(rows[0][1])
        if query.offset == 0:
            return [], 0
        count = select(func.count()).select_from(Product).where(*conditions)
        total = await self.session.scalar(count)
        return [], int(total or 0)

    async def get_live(self, product_id: int, *, for_update: bool = False) -> Product | None:
        """The product unless archived; ``for_update`` locks its row until commit."""
        statement = select(Product).where(Product.id == product_id, ~Product.archived)
        if for_update:
            statement = statement.with_for_update()
        result: Product | None = (await self.session.execute(statement)).scalar_one_or_none()
        return result

    async def staff_page(
        self, query: ProductQuery, *, archived: bool = False, stock_at_most: int | None = None
    ) -> tuple[Sequence[Product], int]:
        """The staff console's list: the API's filters and ordering, over live or archived
        products, optionally only those with at most ``stock_at_most`` units."""
        conditions = _conditions(query)
        conditions[0] = Product.archived.is_(True) if archived else ~Product.archived
        if stock_at_most is not None:
            conditions.append(Product.stock <= stock_at_most)
        column = _ORDER_COLUMNS[query.ordering]
        descending = query.ordering.value.startswith("-")
        order = (
            (column.desc(), Product.id.desc()) if descending else (column.asc(), Product.id.asc())
        )
        # The total rides along as a window count (one statement), as in `page`.
        rows = (
            await self.session.execute(
                select(Product, func.count().over())
                .where(*conditions)
                .order_by(*order)
                .limit(query.limit)
                .offset(query.offset)
            )
        ).all()
        if rows:
            return [row[0] for row in rows], int(rows[0][1])
        count = select(func.count()).select_from(Product).where(*conditions)
        return [], int(await self.session.scalar(count) or 0)

    async def get_any(self, product_id: int, *, for_update: bool = False) -> Product | None:
        """The product, archived or not (staff views, restore)."""
        statement = select(Product).where(Product.id == product_id)
        if for_update:
            statement = statement.with_for_update()
        result: Product | None = (await self.session.execute(statement)).scalar_one_or_none()
        return result

    async def stock_counts(self, low: int) -> tuple[int, int]:
        """``(out of stock, low but not out)`` among live products; low = at most ``low`` units."""
        row = (
            await self.session.execute(
                select(
                    func.count().filter(Product.stock == 0),
                    func.count().filter(Product.stock > 0, Product.stock <= low),
                ).where(~Product.archived)
            )
        ).one()
        return int(row[0]), int(row[1])


def _conditions(query: ProductQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [~Product.archived]
    if query.category is not None:
        conditions.append(Product.category == query.category.value)
    if query.price_min is not None:
        conditions.append(Product.price >= query.price_min)
    if query.price_max is not None:
        conditions.append(Product.price <= query.price_max)
    if query.search:
        conditions.append(Product.name.icontains(query.search, autoescape=True))
    if query.in_stock is True:
        conditions.append(Product.stock > 0)
    elif query.in_stock is False:
        conditions.append(Product.stock == 0)
    return conditions
