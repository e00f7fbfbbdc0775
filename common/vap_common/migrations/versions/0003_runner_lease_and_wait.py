"""The runtime's lease on each runner and why a runner is not started yet.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

``workers.heartbeat_at`` is renewed by the runtime (every ``heartbeat_seconds``) for each runner it
knows to be running: a scenario whose lease lapsed is shown as stale by the API instead of plainly
``active``. ``workers.wait_reason`` says why a desired-active runner is not running yet (e.g. the
runtime is at its capacity); NULL once it runs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workers", sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
    op.add_column("workers", sa.Column("wait_reason", sa.Text()))


def downgrade() -> None:
    op.drop_column("workers", "wait_reason")
    op.drop_column("workers", "heartbeat_at")
