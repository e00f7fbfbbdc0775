"""analysis_fps: the rate a scenario's detector analyses, which counts against its tenant's quota.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

A scenario may ask for its own analysis rate (frames per second); NULL, as every existing row has,
means the runtime's default (VAP_RUNNER__TARGET_FPS). The workers row carries it to the runner.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scenarios", sa.Column("analysis_fps", sa.Float(), nullable=True))
    op.create_check_constraint("ck_scenarios_analysis_fps", "scenarios", "analysis_fps > 0")
    op.add_column("workers", sa.Column("analysis_fps", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("workers", "analysis_fps")
    op.drop_constraint("ck_scenarios_analysis_fps", "scenarios", type_="check")
    op.drop_column("scenarios", "analysis_fps")
