"""The four tables: scenarios, outbox_scenario, scenario_results, workers.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = (
    "'init_startup', 'in_startup_processing', 'active', 'init_shutdown', 'in_shutdown_processing', 'inactive', 'failed'"
)


def _timestamp(name: str, *, default: bool = True) -> sa.Column[datetime]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.func.now() if default else None, nullable=not default
    )


def upgrade() -> None:
    op.create_table(
        "scenarios",
        sa.Column("scenario_uuid", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.Text()),
        sa.Column("camera_url", sa.Text(), nullable=False),
        sa.Column("detector", sa.Text(), nullable=False, server_default="mock"),
        sa.Column("detector_settings", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("error_reason", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.Column("idempotency_key", sa.Text(), unique=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_scenarios_status"),
    )
    op.create_index("ix_scenarios_status_created", "scenarios", ["status", "created_at", "scenario_uuid"])
    op.create_index("ix_scenarios_created", "scenarios", ["created_at", "scenario_uuid"])

    op.create_table(
        "outbox_scenario",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("scenario_uuid", UUID(as_uuid=True), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("payload", JSONB(), nullable=False),
        _timestamp("created_at"),
        _timestamp("published_at", default=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text()),
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox_scenario", ["id"], postgresql_where=sa.text("published_at IS NULL")
    )
    op.create_index("ix_outbox_scenario_id", "outbox_scenario", ["scenario_uuid", "id"])
    op.create_index(
        "ix_outbox_published_at",
        "outbox_scenario",
        ["published_at"],
        postgresql_where=sa.text("published_at IS NOT NULL"),
    )

    op.create_table(
        "scenario_results",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("scenario_uuid", UUID(as_uuid=True), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("frame_number", sa.BigInteger(), nullable=False),
        sa.Column("detections", JSONB(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        _timestamp("received_at"),
        sa.UniqueConstraint("scenario_uuid", "run_id", "frame_number", name="uq_scenario_results_dedupe"),
    )
    op.create_index("ix_scenario_results_frame_order", "scenario_results", ["scenario_uuid", "frame_number", "id"])

    op.create_table(
        "workers",
        sa.Column("worker_id", sa.Text(), primary_key=True),
        sa.Column("scenario_uuid", UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("camera_url", sa.Text(), nullable=False),
        sa.Column("detector", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("desired_state", sa.Text(), nullable=False, server_default="active"),
        sa.Column("process_pid", sa.Integer()),
        sa.Column("pod_name", sa.Text()),
        sa.Column("restart_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text()),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("started_at", default=False),
        _timestamp("stopped_at", default=False),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_table("scenario_results")
    op.drop_table("outbox_scenario")
    op.drop_table("scenarios")
