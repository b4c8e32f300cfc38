"""The product table. Products are archived, never deleted, so past orders keep their rows."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import Base


class Category(enum.StrEnum):
    ELECTRONICS = "electronics"
    CLOTHING = "clothing"
    BOOKS = "books"
    HOME = "home"
    SPORTS = "sports"
    TOYS = "toys"


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    stock: Mapped[int] = mapped_column(Integer)
    stock_version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Moved forward by a trigger on every change of ``stock`` (migration
    2026_12_01_12): orders the cached stock figures of `shop.catalog.stock`."""
    category: Mapped[str] = mapped_column(String(32))
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    imported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When `shop import django` last wrote this product; null for products made in the shop."""

    __table_args__ = (
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint(
            "category IN ('electronics','clothing','books','home','sports','toys')",
            name="category_known",
        ),
        # Every list query filters on NOT archived and orders by one column with
        # id as tie-breaker; these partial indexes serve those orderings alone or
        # after a category filter (PostgreSQL scans them backwards for "-field").
        Index("ix_products_live_created", "created_at", "id", postgresql_where="NOT archived"),
        Index("ix_products_live_price", "price", "id", postgresql_where="NOT archived"),
        # Name order with price last: a price range ordered by name is filtered inside
        # the index (price is an index condition there) instead of on each heap row.
        Index(
            "ix_products_live_name_price", "name", "id", "price", postgresql_where="NOT archived"
        ),
        Index(
            "ix_products_live_category_created",
            "category",
            "created_at",
            "id",
            postgresql_where="NOT archived",
        ),
        Index(
            "ix_products_live_category_price",
            "category",
            "price",
            "id",
            postgresql_where="NOT archived",
        ),
        # `search` (a case-insensitive substring of the name) through pg_trgm.
        Index(
            "ix_products_live_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
            postgresql_where="NOT archived",
        ),
    )
    # INSERT/UPDATE ... RETURNING the server-side timestamps, instead of a
    # second SELECT to refresh them.
    __mapper_args__ = {"eager_defaults": True}
