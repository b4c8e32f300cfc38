"""Queries of the catalogue. Archived products are invisible to every query here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    bindparam,
    func,
    select,
    union_all,
)
from sqlalchemy.orm import aliased

from shop.catalog.models import Product
from shop.catalog.schemas import Ordering, ProductQuery
from shop.pagination import Count, Window, count_rows, known_count, with_capped_count

__all__ = [
    "ProductRepository",
    "matching",
    "page_statement",
]

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

    async def page(self, query: ProductQuery, threshold: int) -> tuple[list[Product], bool, Count]:
        """One page of live products, whether another page follows, and how many match
        (exact up to ``threshold``, else an estimate).

        One statement (`page_statement`): the page, one row more to tell whether a
        next page exists, and the bounded count as a column. A second round trip
        only for an estimate (beyond ``threshold``) or an empty page past the start.
        """
        found = (await self.session.execute(*_page_of(query, threshold))).all()
        rows = [row[0] for row in found]
        products, has_next = rows[: query.limit], len(rows) > query.limit
        at = Window(query.limit, query.offset, None)
        count = known_count(at, len(products), has_next)
        if count is None:
            seen = int(found[0][1]) if found else None
            count = await count_rows(self.session, matching(query), threshold, seen)
        return products, has_next, count

    async def get_live(self, product_id: int, *, for_update: bool = False) -> Product | None:
        """The product unless archived; ``for_update`` locks its row until commit."""
        statement = _LIVE_FOR_UPDATE if for_update else _LIVE
        found = await self.session.execute(statement, {"product_id": product_id})
        result: Product | None = found.scalar_one_or_none()
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


def page_statement(query: ProductQuery, threshold: int) -> Select[Any]:
    """The page of ``query``, one row more (is there a next page?), and on every row
    how many products match, counted up to ``threshold + 1`` (`with_capped_count`).

    Every value is a named parameter (`_parameters`), so one statement serves
    every query of its shape (`_page_of`).
    """
    if query.search:
        return _search_page_statement(query, threshold)
    page = (
        select(Product)
        .where(*_conditions(query))
        .order_by(*_order(query))
        .limit(bindparam("page_limit", query.limit + 1, type_=Integer))
        .offset(bindparam("page_offset", query.offset, type_=Integer))
    )
    return with_capped_count(page, matching(query), threshold)


def _search_page_statement(query: ProductQuery, threshold: int) -> Select[Any]:
    """`page_statement` of a search: the trigram index read once, not twice.

    A search's matches come from a bitmap of the trigram index, whose cost is
    reading the posting lists of the pattern's trigrams (about 6 ms at a
    million products for two common words); the page and its count as separate
    scans read it twice. Here the count's rows (at most ``threshold + 1`` ids,
    ``found``) are read first; when they are every match (at most ``threshold``),
    the page is sorted from them by primary key, else it is read as usual (the
    order's index, filtered: a common word finds its page early). Each branch
    runs only when its one-time condition holds.
    """
    conditions = _conditions(query)
    cap = bindparam("count_cap", threshold + 1, type_=Integer)
    found = (
        select(Product.id).where(*conditions).limit(cap).cte("found").prefix_with("MATERIALIZED")
    )
    capped = select(func.count()).select_from(found).scalar_subquery()
    every = bindparam("count_threshold", threshold, type_=Integer)
    depth = bindparam("page_depth", query.offset + query.limit + 1, type_=Integer)
    few = (
        select(Product, capped.label("capped_count"))
        .where(Product.id.in_(select(found.c.id)), capped <= every)
        .order_by(*_order(query))
        .limit(depth)
    )
    many = (
        select(Product, capped.label("capped_count"))
        .where(*conditions, capped > every)
        .order_by(*_order(query))
        .limit(depth)
    )
    union = union_all(few, many).subquery("page")
    product = aliased(Product, union)
    column = getattr(product, _ORDER_COLUMNS[query.ordering].key)
    descending = query.ordering.value.startswith("-")
    order = (column.desc(), product.id.desc()) if descending else (column.asc(), product.id.asc())
    return (
        select(product, union.c.capped_count)
        .order_by(*order)
        .limit(bindparam("page_limit", query.limit + 1, type_=Integer))
        .offset(bindparam("page_offset", query.offset, type_=Integer))
    )


_Shape = tuple[bool, bool, bool, bool, bool | None, Ordering]

_pages: dict[_Shape, Select[Any]] = {}
"""One page statement per shape of query (which filters, which order): at most
2 * 2 * 2 * 2 * 3 * 6 = 288 of them."""


def _page_of(query: ProductQuery, threshold: int) -> tuple[Select[Any], dict[str, Any]]:
    """The page statement of ``query``'s shape, built once per process, and its values.

    Building a statement (its clauses, then its cache key) took about as much
    CPU as a miss's whole database round trip; SQLAlchemy's compiled form and
    asyncpg's prepared statement are per shape already, so the values are all
    that change between two queries of one shape.
    """
    shape: _Shape = (
        query.category is not None,
        query.price_min is not None,
        query.price_max is not None,
        bool(query.search),
        query.in_stock,
        query.ordering,
    )
    statement = _pages.get(shape)
    if statement is None:
        statement = _pages[shape] = page_statement(query, threshold)
    return statement, _parameters(query, threshold)


def _parameters(query: ProductQuery, threshold: int) -> dict[str, Any]:
    """The values of `page_statement`'s named parameters for ``query``."""
    values: dict[str, Any] = {
        "page_limit": query.limit + 1,
        "page_offset": query.offset,
        "count_cap": threshold + 1,
    }
    if query.category is not None:
        values["category"] = query.category.value
    if query.price_min is not None:
        values["price_min"] = query.price_min
    if query.price_max is not None:
        values["price_max"] = query.price_max
    if query.search:
        values["search"] = _pattern(query.search)
        values["count_threshold"] = threshold
        values["page_depth"] = query.offset + query.limit + 1
    return values


def matching(query: ProductQuery) -> Select[int]:
    """The ids of every live product ``query`` matches (what its count counts).

    A count stops after so many rows, so where it starts matters. With a
    selective filter (category, price, search) PostgreSQL reads the first
    rows from the index of that filter. Without one, any rows will do and it
    would take them from the start of the table: the count then follows the
    page's order, so it reads the page's own index (index-only) instead.
    """
    rows = select(Product.id).where(*_conditions(query))
    filters = (query.category, query.price_min, query.price_max)
    selective = bool(query.search) or any(f is not None for f in filters)
    return rows if selective else rows.order_by(*_order(query))


def _order(query: ProductQuery) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    column = _ORDER_COLUMNS[query.ordering]
    # id breaks ties in the same direction, so pages are stable and one
    # index (column, id) serves both directions.
    if query.ordering.value.startswith("-"):
        return column.desc(), Product.id.desc()
    return column.asc(), Product.id.asc()


def live_statement(product_id: int) -> Select[Product]:
    """A live product by id (its id a named parameter, ``product_id``)."""
    return select(Product).where(
        Product.id == bindparam("product_id", product_id), ~Product.archived
    )


# Built once (a product detail miss, a checkout's row lock): only the id changes.
_LIVE = live_statement(0)
_LIVE_FOR_UPDATE = _LIVE.with_for_update()


def _conditions(query: ProductQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [~Product.archived]
    # Named parameters: `_parameters` gives their values to a statement built for
    # another query of the same shape.
    if query.category is not None:
        conditions.append(Product.category == bindparam("category", query.category.value))
    if query.price_min is not None:
        conditions.append(Product.price >= bindparam("price_min", query.price_min))
    if query.price_max is not None:
        conditions.append(Product.price <= bindparam("price_max", query.price_max))
    if query.search:
        # ILIKE (not lower() LIKE lower()) so the pg_trgm index on name serves
        # it, and the pattern rendered into the statement by SQLAlchemy
        # (literal_execute): with a bound parameter PostgreSQL may settle on a
        # generic plan for the prepared statement, which cannot use the
        # trigram index and guesses the selectivity.
        pattern = bindparam("search", _pattern(query.search), type_=String, literal_execute=True)
        conditions.append(Product.name.ilike(pattern, escape="/"))
    if query.in_stock is True:
        conditions.append(Product.stock > 0)
    elif query.in_stock is False:
        conditions.append(Product.stock == 0)
    return conditions


def _pattern(search: str) -> str:
    """The ILIKE pattern of a search: the text anywhere in the name, taken literally."""
    return f"%{_like_literal(search)}%"


def _like_literal(text: str) -> str:
    """``text`` as a LIKE pattern that matches itself: ``%`` and ``_`` are not wildcards."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")
