"""database identity: a random id, written once, from which the cache derives its key prefix

Two shops (production and staging, or two tenants) may share one memcached.
Every cache key carries a prefix naming the database it was read from
(`shop.identity`); this one-row table is where that name comes from. A
restored dump keeps the id, so after a restore run `shop cache flush`.

Revision ID: 2026_12_01_03
Revises: 2026_12_01_02
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_03"
down_revision = "2026_12_01_02"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "database_identity",
        sa.Column("singleton", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("singleton", name=op.f("ck_database_identity_one_row")),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_database_identity")),
    )
    op.execute("INSERT INTO database_identity DEFAULT VALUES")


def downgrade() -> None:
    op.drop_table("database_identity")
