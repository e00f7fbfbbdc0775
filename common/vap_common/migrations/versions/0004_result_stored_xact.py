"""scenario_results.stored_xact: the transaction that stored each result, for a cursor that skips nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

GET /prediction pages a scenario's results by (stored_xact, id) and serves only rows whose
transaction is below the reader's snapshot xmin (``vap_api.predictions.service``): ids become
visible out of commit order when two inbox transactions overlap, transaction ids below xmin never
gain a row again. ``xid8`` (64 bits, with the epoch) never wraps around.

Existing rows get ``'0'``, below every real transaction id (those start at 3): they were committed
before this migration (its ACCESS EXCLUSIVE lock waits for every writer of the table), so they are
served first, in id order as before, and ``'0'`` says plainly "stored before the column existed".
A constant default adds the column without rewriting the table (PostgreSQL keeps it in the catalog);
``pg_current_xact_id()`` becomes the default only afterwards, for new rows. It returns the top-level
transaction id also inside the inbox's savepoint, and COPY with a column list fills the defaults of
the columns it leaves out, so the inbox needs no change.

The new index is built without CONCURRENTLY (migrations run in one transaction): on a large table
the inbox waits for the build.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("ALTER TABLE scenario_results ADD COLUMN stored_xact xid8 NOT NULL DEFAULT '0'::xid8"))
    op.execute(sa.text("ALTER TABLE scenario_results ALTER COLUMN stored_xact SET DEFAULT pg_current_xact_id()"))
    op.create_index("ix_scenario_results_page", "scenario_results", ["scenario_uuid", "stored_xact", "id"])


def downgrade() -> None:
    op.drop_index("ix_scenario_results_page", table_name="scenario_results")
    op.drop_column("scenario_results", "stored_xact")
