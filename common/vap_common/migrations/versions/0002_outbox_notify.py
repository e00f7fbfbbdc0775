"""Outbox wake-up trigger (LISTEN/NOTIFY) and the allowed outbox event types.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Every INSERT into ``outbox_scenario`` sends ``NOTIFY vap_outbox, '<schema>'`` when its transaction
commits, whoever the writer is. The relay LISTENs on that channel to publish within milliseconds;
the notification is only a hint (it is lost if no relay listens), the relay's polling is the truth.
One channel for every schema, the schema in the payload: a channel name is limited to 63 bytes, and
a relay woken by another schema's insert only runs one cheap query. The trigger fires once per
statement, and PostgreSQL folds identical notifications of one transaction into one.

``scenario_results`` deliberately has no foreign key to ``scenarios``: the RI check would take a
KEY SHARE lock on the scenario row for every stored frame and roughly halve the inbox's insert
rate; the inbox checks that the scenario exists once per batch instead (and no code deletes
scenarios).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_check_constraint("ck_outbox_event_type", "outbox_scenario", "event_type IN ('start', 'shutdown')")
    op.execute(
        sa.text(
            """
            CREATE FUNCTION vap_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('vap_outbox', TG_TABLE_SCHEMA);
                RETURN NULL;
            END
            $$
            """
        )
    )
    op.execute(
        sa.text(
            "CREATE TRIGGER trg_outbox_notify AFTER INSERT ON outbox_scenario "
            "FOR EACH STATEMENT EXECUTE FUNCTION vap_outbox_notify()"
        )
    )


def downgrade() -> None:
    op.execute(sa.text("DROP TRIGGER IF EXISTS trg_outbox_notify ON outbox_scenario"))
    op.execute(sa.text("DROP FUNCTION IF EXISTS vap_outbox_notify()"))
    op.drop_constraint("ck_outbox_event_type", "outbox_scenario", type_="check")
