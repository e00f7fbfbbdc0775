"""Scenario use cases. Each function is one transaction; commands go out through the outbox."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from vap_api.errors import IdempotencyKeyReused, InvalidRequest, NotFound
from vap_api.outbox.service import enqueue
from vap_common.contracts import DetectorSpec, ScenarioCommand
from vap_common.lifecycle import SHUTDOWN_NOOP_STATES, ScenarioStatus, can_transition
from vap_common.redact import redact_url
from vap_common.schema import Scenario

log = logging.getLogger(__name__)

# The table, not the ORM entity, for the INSERT of the hot path: the ORM's bulk machinery adds only cost.
_SCENARIOS = cast(Table, Scenario.__table__)


@dataclass(frozen=True)
class Created:
    scenario_uuid: uuid.UUID
    status: ScenarioStatus
    created: bool  # False: an earlier request with the same Idempotency-Key made it


@dataclass(frozen=True)
class ShutdownOutcome:
    scenario_uuid: uuid.UUID
    status: ScenarioStatus
    requested: bool  # False: it was already stopping or stopped, nothing was written


def create_scenario(
    *, session: Session, camera_url: str, detector: DetectorSpec, name: str | None = None, idempotency_key: str | None = None
) -> Created:
    """Insert a scenario in init_startup and its start command, in one transaction."""
    with session.begin():
        # ON CONFLICT waits for a concurrent insert of the same key, so a race yields one scenario.
        statement = (
            insert(_SCENARIOS)
            .values(
                scenario_uuid=uuid.uuid4(),
                name=name,
                camera_url=camera_url,
                detector=detector.name,
                detector_settings=detector.settings,
                status=ScenarioStatus.INIT_STARTUP.value,
                idempotency_key=idempotency_key,
            )
            .on_conflict_do_nothing(index_elements=[_SCENARIOS.c.idempotency_key])
            .returning(_SCENARIOS.c.scenario_uuid)
        )
        scenario_uuid = session.execute(statement).scalar_one_or_none()
        if scenario_uuid is None:
            existing = session.execute(
                select(Scenario.scenario_uuid, Scenario.status, Scenario.camera_url, Scenario.detector, Scenario.detector_settings, Scenario.name)
                .where(Scenario.idempotency_key == idempotency_key)
            ).one()
            if tuple(existing[2:]) != (camera_url, detector.name, detector.settings, name):
                raise IdempotencyKeyReused("this Idempotency-Key was already used with a different request")
            return Created(existing.scenario_uuid, ScenarioStatus(existing.status), created=False)
        enqueue(session=session, command=ScenarioCommand(scenario_uuid=scenario_uuid, command="start", camera_url=camera_url, detector=detector))
    log.info("scenario created", extra={"scenario_uuid": str(scenario_uuid), "camera_url": redact_url(camera_url), "detector": detector.name})
    return Created(scenario_uuid, ScenarioStatus.INIT_STARTUP, created=True)


def get_scenario(*, session: Session, scenario_uuid: uuid.UUID) -> Scenario:
    """The scenario, or NotFound."""
    scenario = session.get(Scenario, scenario_uuid)
    if scenario is None:
        raise NotFound(f"scenario {scenario_uuid} not found")
    return scenario


def list_scenarios(
    *, session: Session, status: ScenarioStatus | None, limit: int, cursor: str | None
) -> tuple[list[Scenario], str | None]:
    """Newest first, optionally of one status; returns the page and the cursor of the next one."""
    query = select(Scenario).order_by(Scenario.created_at.desc(), Scenario.scenario_uuid.desc()).limit(limit + 1)
    if status is not None:
        query = query.where(Scenario.status == status.value)
    if cursor is not None:
        created_at, last_uuid = decode_cursor(cursor)
        query = query.where(tuple_(Scenario.created_at, Scenario.scenario_uuid) < tuple_(created_at, last_uuid))
    rows = list(session.scalars(query))
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode_cursor(page[-1].created_at, page[-1].scenario_uuid)


def request_shutdown(*, session: Session, scenario_uuid: uuid.UUID) -> ShutdownOutcome:
    """Move the scenario to init_shutdown and queue its shutdown command; a no-op if already stopping."""
    with session.begin():
        scenario = session.scalars(select(Scenario).where(Scenario.scenario_uuid == scenario_uuid).with_for_update()).one_or_none()
        if scenario is None:
            raise NotFound(f"scenario {scenario_uuid} not found")
        current = ScenarioStatus(scenario.status)
        if current in SHUTDOWN_NOOP_STATES or not can_transition(current, ScenarioStatus.INIT_SHUTDOWN):
            return ShutdownOutcome(scenario_uuid, current, requested=False)
        session.execute(
            update(Scenario)
            .where(Scenario.scenario_uuid == scenario_uuid)
            .values(status=ScenarioStatus.INIT_SHUTDOWN.value, updated_at=func.now())
            .execution_options(synchronize_session=False)
        )
        enqueue(
            session=session,
            command=ScenarioCommand(
                scenario_uuid=scenario_uuid,
                command="shutdown",
                camera_url=scenario.camera_url,
                detector=DetectorSpec(name=scenario.detector, settings=scenario.detector_settings),
            ),
        )
    log.info("scenario shutdown requested", extra={"scenario_uuid": str(scenario_uuid), "previous_status": current.value})
    return ShutdownOutcome(scenario_uuid, ScenarioStatus.INIT_SHUTDOWN, requested=True)


def encode_cursor(created_at: datetime, scenario_uuid: uuid.UUID) -> str:
    """An opaque cursor for the position after (created_at, scenario_uuid)."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{scenario_uuid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position in ``cursor``, or InvalidRequest."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, _, scenario_uuid = raw.partition("|")
        position = datetime.fromisoformat(created_at), uuid.UUID(scenario_uuid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(("query", "cursor"), "cursor is not valid; use next_cursor from the previous page") from None
    if position[0].tzinfo is None:
        raise InvalidRequest(("query", "cursor"), "cursor is not valid; use next_cursor from the previous page")
    return position
