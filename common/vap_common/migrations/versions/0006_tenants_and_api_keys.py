"""Tenants and API keys: every scenario belongs to a tenant; keys are stored as hashes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Scenarios registered before tenants existed belong to the tenant ``default``; the orchestrator's
``workers`` rows carry their scenario's tenant too (it labels the VideoScenario and the runner's Pod).
An Idempotency-Key is unique per tenant (two tenants may pick the same one), and a tenant's list has
its own indexes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# As in vap_common.tenants at this revision (a migration must not change when the code does).
_TENANT_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


def upgrade() -> None:
    for table in ("scenarios", "workers"):
        op.add_column(table, sa.Column("tenant", sa.Text(), server_default="default", nullable=False))
    op.drop_constraint("scenarios_idempotency_key_key", "scenarios", type_="unique")
    op.create_unique_constraint("uq_scenarios_tenant_idempotency_key", "scenarios", ["tenant", "idempotency_key"])
    op.drop_index("ix_scenarios_created", table_name="scenarios")
    op.create_index("ix_scenarios_tenant_created", "scenarios", ["tenant", "created_at", "scenario_uuid"])
    op.create_index(
        "ix_scenarios_tenant_status_created", "scenarios", ["tenant", "status", "created_at", "scenario_uuid"]
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.Text(), primary_key=True),
        sa.Column("key_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("scopes", ARRAY(sa.Text()), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(f"tenant ~ '{_TENANT_PATTERN}'", name="ck_api_keys_tenant"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_scenarios_tenant_status_created", table_name="scenarios")
    op.drop_index("ix_scenarios_tenant_created", table_name="scenarios")
    op.create_index("ix_scenarios_created", "scenarios", ["created_at", "scenario_uuid"])
    op.drop_constraint("uq_scenarios_tenant_idempotency_key", "scenarios", type_="unique")
    op.create_unique_constraint("scenarios_idempotency_key_key", "scenarios", ["idempotency_key"])
    for table in ("scenarios", "workers"):
        op.drop_column(table, "tenant")
