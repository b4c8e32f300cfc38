"""invoice pdf stored after the number: the counter's row lock no longer spans a rendering

The invoice job now takes the year's number and inserts the invoice row in one
autocommit statement, renders the PDF with no lock held, then stores it
(`shop.orders.invoice_repository`). Between the two, the row has no PDF: the
download and the e-mail treat it as not ready yet. Dropping NOT NULL rewrites
nothing.

Revision ID: 2026_12_01_15
Revises: 2026_12_01_14
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_15"
down_revision = "2026_12_01_14"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("invoices", "pdf", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    # An invoice waiting for its PDF holds a number: deleting it would leave a gap in the
    # sequence, so the downgrade waits for the workers to store every PDF first.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM invoices WHERE pdf IS NULL) THEN "
        "RAISE EXCEPTION 'invoices are waiting for their PDF: let the workers finish, then retry'; "
        "END IF; END $$"
    )
    op.alter_column("invoices", "pdf", existing_type=sa.LargeBinary(), nullable=False)
