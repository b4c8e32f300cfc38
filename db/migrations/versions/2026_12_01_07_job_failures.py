"""job failures: the error of each failed job attempt, for the staff console

Procrastinate keeps no error text for a failed job; `shop.job_failures`
records it (see that module).

Revision ID: 2026_12_01_07
Revises: 2026_12_01_06
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_07"
down_revision = "2026_12_01_06"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_failures",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("task_name", sa.String(length=255), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_failures")),
    )
    op.create_index("ix_job_failures_job_id", "job_failures", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_job_failures_job_id", table_name="job_failures")
    op.drop_table("job_failures")
