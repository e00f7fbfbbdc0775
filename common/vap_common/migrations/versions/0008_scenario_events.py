"""scenario_events: what tracked objects did (the `events` topic), each event stored once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

A runner run numbers its events (``sequence``); (scenario, run, sequence) is the inbox's dedupe key,
so a redelivered event is stored once and a restarted runner (a new run) never collides. GET /events
pages by (stored_xact, id) like GET /prediction (migration 0004 says why ids alone skip rows).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The event types when this migration was written (a later type needs a migration of its own).
_TYPES = "'object_appeared', 'object_lost', 'object_entered', 'object_left', 'line_crossed'"


def upgrade() -> None:
    op.create_table(
        "scenario_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("scenario_uuid", UUID(as_uuid=True), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("track_id", sa.BigInteger(), nullable=False),
        sa.Column("class", sa.Text(), nullable=False),
        sa.Column("frame_number", sa.BigInteger(), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("zone", sa.Text(), nullable=True),
        sa.Column("line", sa.Text(), nullable=True),
        sa.Column("direction", sa.Text(), nullable=True),
        sa.Column("dwell_seconds", sa.Float(), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("scenario_uuid", "run_id", "sequence", name="uq_scenario_events_dedupe"),
        sa.CheckConstraint(f"type IN ({_TYPES})", name="ck_scenario_events_type"),
    )
    # xid8, which SQLAlchemy has no type for: the storing transaction, the page order's first key.
    op.execute(sa.text("ALTER TABLE scenario_events ADD COLUMN stored_xact xid8 NOT NULL DEFAULT pg_current_xact_id()"))
    op.create_index("ix_scenario_events_page", "scenario_events", ["scenario_uuid", "stored_xact", "id"])
    op.create_index("ix_scenario_events_type_page", "scenario_events", ["scenario_uuid", "type", "stored_xact", "id"])
    op.create_index("ix_scenario_events_captured", "scenario_events", ["scenario_uuid", "captured_at"])


def downgrade() -> None:
    op.drop_table("scenario_events")
