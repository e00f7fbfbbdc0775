"""The database tables, as SQLAlchemy models. Alembic migrations in ``migrations/`` create them.

`scenarios`, `outbox_scenario`, `scenario_results`, `result_drops`, `scenario_events` and `api_keys` belong to
the API; `workers` to the orchestrator. They share one database, and their definitions live here once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from vap_common.contracts import EventType
from vap_common.lifecycle import ScenarioStatus
from vap_common.tenants import DEFAULT_TENANT, TENANT_PATTERN

STATUS_VALUES = ", ".join(f"'{status.value}'" for status in ScenarioStatus)
EVENT_TYPE_VALUES = ", ".join(f"'{event_type.value}'" for event_type in EventType)


class Base(DeclarativeBase):
    pass


class Scenario(Base):
    __tablename__ = "scenarios"
    __table_args__ = (
        CheckConstraint(f"status IN ({STATUS_VALUES})", name="ck_scenarios_status"),
        CheckConstraint("analysis_fps > 0", name="ck_scenarios_analysis_fps"),
        # The start queue's count (scenarios starting, of every tenant).
        Index("ix_scenarios_status_created", "status", "created_at", "scenario_uuid"),
        # A tenant's list, with or without a status filter, from a (created_at, scenario_uuid) cursor.
        Index("ix_scenarios_tenant_created", "tenant", "created_at", "scenario_uuid"),
        Index("ix_scenarios_tenant_status_created", "tenant", "status", "created_at", "scenario_uuid"),
        # An Idempotency-Key names one request of its tenant.
        UniqueConstraint("tenant", "idempotency_key", name="uq_scenarios_tenant_idempotency_key"),
    )

    scenario_uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    camera_url: Mapped[str] = mapped_column(Text)
    detector: Mapped[str] = mapped_column(Text, server_default="mock")
    detector_settings: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(Text)
    error_reason: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    tenant: Mapped[str] = mapped_column(Text, server_default=DEFAULT_TENANT)
    # Frames per second its detector analyses; NULL: the runtime's default (VAP_RUNNER__TARGET_FPS).
    analysis_fps: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    """A key of the REST API (migration 0006): the client sends ``vap_<key_id>_<secret>``; only the
    SHA-256 of the whole key is kept (keys are random, so a slow hash would add nothing but cost)."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(f"tenant ~ '{TENANT_PATTERN}'", name="ck_api_keys_tenant"),)

    key_id: Mapped[str] = mapped_column(Text, primary_key=True)
    key_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    tenant: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxScenario(Base):
    """A command waiting to be published; ``published_at`` set once the broker acknowledged it.

    ``topic`` is the logical topic (``init_scenario``), ``payload`` a ScenarioCommand as JSON. An
    AFTER INSERT trigger (migration 0002) sends ``NOTIFY vap_outbox`` to wake the relay.
    """

    __tablename__ = "outbox_scenario"
    __table_args__ = (
        CheckConstraint("event_type IN ('start', 'shutdown')", name="ck_outbox_event_type"),
        # The relay's scan: oldest unpublished first. Partial, so it stays small however old the table.
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        # Per-scenario order checks (an older unpublished row of the same scenario blocks newer ones).
        Index("ix_outbox_scenario_id", "scenario_uuid", "id"),
        # Pruning published rows by age.
        Index("ix_outbox_published_at", "published_at", postgresql_where=text("published_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    scenario_uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    topic: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


class Xid8(UserDefinedType[str]):
    """PostgreSQL's 64-bit transaction id (``xid8``), which SQLAlchemy has no type for; read as its decimal text."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "xid8"


# So that reflection (Alembic's comparison of these models with the migrated schema) knows the type.
ischema_names.setdefault("xid8", Xid8)


class ScenarioResult(Base):
    """One analysed frame, identified by (scenario_uuid, run_id, frame_number): that key deduplicates
    redelivered results. ``stored_xact`` is the transaction that stored the row (migration 0004):
    GET /prediction pages by (stored_xact, id), see ``vap_api.predictions.service``."""

    __tablename__ = "scenario_results"
    __table_args__ = (
        UniqueConstraint("scenario_uuid", "run_id", "frame_number", name="uq_scenario_results_dedupe"),
        # The after_frame filter, and the "frame already stored by an earlier run" check of file scenarios.
        Index("ix_scenario_results_frame_order", "scenario_uuid", "frame_number", "id"),
        # The prediction page: one scenario's rows from a cursor, in stored order.
        Index("ix_scenario_results_page", "scenario_uuid", "stored_xact", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    scenario_uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    run_id: Mapped[str] = mapped_column(Text)
    frame_number: Mapped[int] = mapped_column(BigInteger)
    detections: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    stored_xact: Mapped[str] = mapped_column(Xid8(), server_default=text("pg_current_xact_id()"))


class ResultDrops(Base):
    """Results a runner run dropped (its undelivered-results budget was full during a Kafka outage), as
    reported in its status events (migration 0005). The counts are the run's totals."""

    __tablename__ = "result_drops"

    scenario_uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    run_id: Mapped[str] = mapped_column(Text, primary_key=True)
    dropped: Mapped[int] = mapped_column(BigInteger)
    first_frame: Mapped[int] = mapped_column(BigInteger)
    last_frame: Mapped[int] = mapped_column(BigInteger)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ScenarioEvent(Base):
    """What a tracked object did (an ObjectEvent, migration 0008), identified by (scenario_uuid, run_id,
    sequence): that key deduplicates redelivered events. GET /events pages by (stored_xact, id), as
    GET /prediction does (``vap_api.predictions.service`` says why)."""

    __tablename__ = "scenario_events"
    __table_args__ = (
        UniqueConstraint("scenario_uuid", "run_id", "sequence", name="uq_scenario_events_dedupe"),
        CheckConstraint(f"type IN ({EVENT_TYPE_VALUES})", name="ck_scenario_events_type"),
        # The events page, with and without a type filter, from a cursor.
        Index("ix_scenario_events_page", "scenario_uuid", "stored_xact", "id"),
        Index("ix_scenario_events_type_page", "scenario_uuid", "type", "stored_xact", "id"),
        # since/until, and the counts per time bucket.
        Index("ix_scenario_events_captured", "scenario_uuid", "captured_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    scenario_uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    run_id: Mapped[str] = mapped_column(Text)
    sequence: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(Text)
    track_id: Mapped[int] = mapped_column(BigInteger)
    class_name: Mapped[str] = mapped_column("class", Text)
    frame_number: Mapped[int] = mapped_column(BigInteger)
    captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    zone: Mapped[str | None] = mapped_column(Text)
    line: Mapped[str | None] = mapped_column(Text)
    direction: Mapped[str | None] = mapped_column(Text)
    dwell_seconds: Mapped[float | None] = mapped_column(Float)
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    stored_xact: Mapped[str] = mapped_column(Xid8(), server_default=text("pg_current_xact_id()"))


class Worker(Base):
    """The orchestrator's record of the runner deployed for a scenario."""

    __tablename__ = "workers"

    worker_id: Mapped[str] = mapped_column(Text, primary_key=True)
    scenario_uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    tenant: Mapped[str] = mapped_column(Text, server_default=DEFAULT_TENANT)
    camera_url: Mapped[str] = mapped_column(Text)
    detector: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    analysis_fps: Mapped[float | None] = mapped_column(Float)  # the scenario's (NULL: the runtime's default)
    status: Mapped[str] = mapped_column(Text)
    # 'active' or 'inactive'; a shutdown that arrives before its start sets 'inactive' first.
    desired_state: Mapped[str] = mapped_column(Text, server_default="active")
    process_pid: Mapped[int | None] = mapped_column(Integer)
    pod_name: Mapped[str | None] = mapped_column(Text)
    restart_count: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The runtime's lease on a running runner (renewed every few seconds; migration 0003).
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why a desired-active runner is not running yet (e.g. the runtime is at capacity); NULL once it runs.
    wait_reason: Mapped[str | None] = mapped_column(Text)
