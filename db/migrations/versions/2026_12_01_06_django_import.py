"""django import: mark imported users, products and orders

``imported_at`` tells rows brought over by `shop import django` from rows made
in the shop (a later pass never overwrites the latter); users keep the Django
hash as last imported; orders record when their invoice was requested.
Nullable columns without defaults: adding them rewrites nothing.

Revision ID: 2026_12_01_06
Revises: 0005_console
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_06"
down_revision = "0005_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("imported_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("imported_password_hash", sa.Text(), nullable=True))
    op.add_column("products", sa.Column("imported_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("orders", sa.Column("imported_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "orders", sa.Column("invoice_requested_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("orders", "invoice_requested_at")
    op.drop_column("orders", "imported_at")
    op.drop_column("products", "imported_at")
    op.drop_column("users", "imported_password_hash")
    op.drop_column("users", "imported_at")
