"""stock version: a per-product counter every stock change moves forward

Cached stock figures (`shop.catalog.stock`) carry the row's ``stock_version``
so a cache entry is only ever replaced by a newer one: the version orders the
writes of one row as its row lock does. A trigger moves it on every update
that changes ``stock``, whoever makes the update (checkout, cancellation,
staff, import, a hand-written UPDATE). Adding a column with a constant
default rewrites nothing (PostgreSQL 11+).

Revision ID: 2026_12_01_12
Revises: 2026_12_01_07
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_12"
down_revision = "2026_12_01_07"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "products",
        sa.Column("stock_version", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.execute(
        """
        CREATE FUNCTION products_stock_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.stock_version := OLD.stock_version + 1;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER products_stock_version
        BEFORE UPDATE OF stock ON products
        FOR EACH ROW WHEN (OLD.stock IS DISTINCT FROM NEW.stock)
        EXECUTE FUNCTION products_stock_version()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER products_stock_version ON products")
    op.execute("DROP FUNCTION products_stock_version()")
    op.drop_column("products", "stock_version")
