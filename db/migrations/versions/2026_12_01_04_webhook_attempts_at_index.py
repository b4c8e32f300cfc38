"""webhook attempts: an index on their time, for the retention purge

Revision ID: 0004_jobs
Revises: 2026_12_01_03
Create Date: 2026-12-01 01:30:00

`orders:purge_webhook_attempts` deletes attempts older than WEBHOOK_LOG_RETENTION_DAYS
every hour; without this index each run would read the whole table.
"""

from __future__ import annotations

from alembic import op

revision = "0004_jobs"
down_revision = "2026_12_01_03"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_webhook_attempts_at"), "webhook_attempts", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_attempts_at"), table_name="webhook_attempts")
