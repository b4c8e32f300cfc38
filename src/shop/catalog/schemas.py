"""Wire shapes of the catalogue: the product clients see, what staff send, list queries."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec

from shop.catalog.models import Category
from shop.schemas import MAX_MONEY, MoneyStr

__all__ = [
    "MAX_OFFSET",
    "CatalogueEntry",
    "CatalogueRow",
    "Category",
    "Ordering",
    "Product",
    "ProductCreate",
    "ProductQuery",
    "ProductUpdate",
]

MAX_OFFSET = 100_000
"""Deeper pages cost PostgreSQL a scan of everything before them; filter instead."""
MAX_STOCK = 2_147_483_647
"""The stock column is a 32-bit integer."""

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["Phone"])]
Description = Annotated[str, msgspec.Meta(max_length=10_000, examples=["Desc"])]
Stock = Annotated[int, msgspec.Meta(ge=0, le=MAX_STOCK, examples=[10])]
PriceIn = Annotated[
    Decimal,
    msgspec.Meta(
        description=(
            f"Greater than 0, at most {MAX_MONEY}, at most two decimal places. "
            'A decimal string ("199.99") is preferred; a JSON number is accepted too.'
        ),
        examples=["199.99"],
        # Documented as what it accepts, a string or a number (Litestar reads
        # "extra" into the field's OpenAPI schema). The string form carries no
        # pattern: any decimal notation is read, then the rules above apply.
        extra_json_schema={
            "extra": {
                "type": None,
                "one_of": [
                    {"type": "string", "format": "decimal"},
                    {"type": "number", "exclusiveMinimum": 0, "maximum": float(MAX_MONEY)},
                ],
            }
        },
    ),
]


class Ordering(enum.StrEnum):
    PRICE = "price"
    PRICE_DESC = "-price"
    NAME = "name"
    NAME_DESC = "-name"
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"


class Product(msgspec.Struct):
    """A product of the catalogue."""

    id: int
    name: str
    description: str
    price: MoneyStr
    stock: int
    category: Category
    created_at: datetime
    updated_at: datetime


class ProductCreate(msgspec.Struct):
    """A new product (POST), or every field of an existing one (PUT)."""

    name: Name
    price: PriceIn
    stock: Stock
    category: Category
    description: Description = ""


class ProductUpdate(msgspec.Struct):
    """The fields to change (PATCH); a field left out keeps its value."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    price: PriceIn | msgspec.UnsetType = msgspec.UNSET
    stock: Stock | msgspec.UnsetType = msgspec.UNSET
    category: Category | msgspec.UnsetType = msgspec.UNSET


class CatalogueRow(msgspec.Struct, array_like=True):
    """A product as a cached list or detail holds it: its JSON, already encoded, around
    the stock figure, which is read fresh (``head + stock + tail`` is the `Product`)."""

    id: int
    head: bytes
    """The product's JSON up to and including ``"stock":``."""
    tail: bytes
    """The product's JSON after the stock figure: ``,"category":...}``."""


class CatalogueEntry(msgspec.Struct, array_like=True):
    """A cached list page (msgpack): its rows and what the envelope needs, but no URL."""

    count: int
    count_is_estimate: bool
    has_next: bool
    limit: int
    offset: int
    rows: list[CatalogueRow]
    digest: bytes = b""
    """A hash of the fields above, set when the entry is built: with the stock figures
    and the links, what a hit's ETag is made of (no hash of the whole body)."""


class ProductQuery(msgspec.Struct, frozen=True, kw_only=True):
    """A validated list query."""

    category: Category | None = None
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    search: str | None = None
    in_stock: bool | None = None
    ordering: Ordering = Ordering.CREATED_AT_DESC
    limit: int = 20
    offset: int = 0

    def normalised(self) -> str:
        """The query as a canonical string: the same filters in any order give the same string.

        Parameters left at their default are spelled out too, so ``?`` and
        ``?limit=20&offset=0`` share an entry. Search is case-insensitive, so
        it is lower-cased; amounts lose trailing zeros (``10`` = ``10.00``).
        """
        parts = [
            f"category={self.category.value}" if self.category is not None else "",
            f"in_stock={str(self.in_stock).lower()}" if self.in_stock is not None else "",
            f"limit={self.limit}",
            f"offset={self.offset}",
            f"ordering={self.ordering.value}",
            f"price_max={_plain(self.price_max)}" if self.price_max is not None else "",
            f"price_min={_plain(self.price_min)}" if self.price_min is not None else "",
            f"search={self.search.lower()}" if self.search is not None else "",
        ]
        return "&".join(part for part in parts if part)


def _plain(amount: Decimal) -> str:
    return format(amount.normalize(), "f")
