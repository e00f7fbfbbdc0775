"""Scenario use cases. Each function is one transaction; commands go out through the outbox."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Row, Select, Table, func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from vap_api.errors import IdempotencyKeyReused, InvalidRequest, NotFound, TooManyRequests
from vap_api.outbox.service import enqueue
from vap_common.camera_secrets import CameraKeyring
from vap_common.contracts import DetectorSpec, ScenarioCommand
from vap_common.lifecycle import SHUTDOWN_NOOP_STATES, ScenarioStatus, can_transition, is_terminal
from vap_common.redact import redact_url
from vap_common.schema import ResultDrops, Scenario, Worker

log = logging.getLogger(__name__)

# The table, not the ORM entity, for the INSERT of the hot path: the ORM's bulk machinery adds only cost.
_SCENARIOS = cast(Table, Scenario.__table__)

# Scenarios waiting for a runner: what the start queue limit counts.
STARTING_STATES = (ScenarioStatus.INIT_STARTUP, ScenarioStatus.IN_STARTUP_PROCESSING)
# Scenarios that have not ended: what a tenant's quota counts.
LIVE_STATES = tuple(state for state in ScenarioStatus if not is_terminal(state))
# Scenarios whose runner should be running, so the runtime renews its lease (workers.heartbeat_at).
LEASED_STATES = frozenset({ScenarioStatus.ACTIVE, ScenarioStatus.IN_SHUTDOWN_PROCESSING})


@dataclass(frozen=True)
class _Camera:
    url: str  # as admitted, in plain text: only compared, never stored
    sealed: str  # what is stored and sent
    keyring: CameraKeyring


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


@dataclass(frozen=True)
class Runtime:
    """What the runtime reports of a scenario's runner (workers row); defaults when it has none yet."""

    heartbeat_at: datetime | None
    stale: bool  # its runner should be running but its lease lapsed: `active` may not be true
    wait_reason: str | None
    restarts: int
    results_dropped: int  # what its runners reported dropping (result_drops, summed over runs)


@dataclass(frozen=True)
class ScenarioView:
    scenario: Scenario
    runtime: Runtime


@dataclass(frozen=True)
class StartQueue:
    """The admission limit of new scenarios (ApiSettings.max_starting_scenarios and its Retry-After)."""

    max_starting: int
    retry_after_seconds: int


@dataclass(frozen=True)
class Quota:
    """What one tenant's scenarios that have not ended may hold (ApiSettings.quotas): how many, and the
    frames per second they analyse together (``None``: no limit; one without a rate counts as
    ``unrated_fps``)."""

    max_scenarios: int
    retry_after_seconds: int
    max_analysis_fps: float | None = None
    unrated_fps: float = 0.0


def create_scenario(
    *,
    session: Session,
    tenant: str,
    camera_url: str,
    keyring: CameraKeyring,
    detector: DetectorSpec,
    start_queue: StartQueue,
    quota: Quota,
    analysis_fps: float | None = None,
    name: str | None = None,
    idempotency_key: str | None = None,
) -> Created:
    """Insert a scenario of ``tenant`` in init_startup and its start command, in one transaction, the
    credentials of ``camera_url`` sealed by ``keyring``; TooManyRequests when the start queue or the
    tenant's quota is full, unless ``idempotency_key`` names an existing scenario of the tenant (a replay)."""
    camera = _Camera(camera_url, keyring.seal(camera_url), keyring)
    with session.begin():
        if (refusal := _refusal(session, tenant, start_queue, quota, analysis_fps)) is not None:
            if idempotency_key is not None and (
                replay := _replay(session, tenant, camera, detector, analysis_fps, name, idempotency_key)
            ):
                return replay
            raise refusal
        # ON CONFLICT waits for a concurrent insert of the same key, so a race yields one scenario.
        statement = (
            insert(_SCENARIOS)
            .values(
                scenario_uuid=uuid.uuid4(),
                tenant=tenant,
                name=name,
                camera_url=camera.sealed,
                detector=detector.name,
                detector_settings=detector.settings,
                analysis_fps=analysis_fps,
                status=ScenarioStatus.INIT_STARTUP.value,
                idempotency_key=idempotency_key,
            )
            .on_conflict_do_nothing(index_elements=[_SCENARIOS.c.tenant, _SCENARIOS.c.idempotency_key])
            .returning(_SCENARIOS.c.scenario_uuid)
        )
        scenario_uuid = session.execute(statement).scalar_one_or_none()
        if scenario_uuid is None:
            assert idempotency_key is not None  # only the idempotency key's unique index can conflict
            replay = _replay(session, tenant, camera, detector, analysis_fps, name, idempotency_key)
            assert replay is not None  # the conflicting row is committed: ON CONFLICT waited for it
            return replay
        enqueue(
            session=session,
            command=ScenarioCommand(
                scenario_uuid=scenario_uuid,
                command="start",
                camera_url=camera.sealed,
                detector=detector,
                tenant=tenant,
                analysis_fps=analysis_fps,
            ),
        )
    log.info(
        "scenario created",
        extra={
            "scenario_uuid": str(scenario_uuid),
            "tenant": tenant,
            "camera_url": redact_url(camera_url),
            "detector": detector.name,
        },
    )
    return Created(scenario_uuid, ScenarioStatus.INIT_STARTUP, created=True)


def _refusal(
    session: Session, tenant: str, start_queue: StartQueue, quota: Quota, analysis_fps: float | None
) -> TooManyRequests | None:
    """Why a new scenario cannot be admitted now, if it cannot.

    Soft limits: concurrent requests may pass a count together and overshoot it a little, which is
    harmless; serialising every insert to make it exact would cost more than it saves.
    """
    if _count(session, STARTING_STATES, at_most=start_queue.max_starting) >= start_queue.max_starting:
        return TooManyRequests(
            f"{start_queue.max_starting} or more scenarios are still starting; retry later",
            retry_after_seconds=start_queue.retry_after_seconds,
        )
    if _count(session, LIVE_STATES, at_most=quota.max_scenarios, tenant=tenant) >= quota.max_scenarios:
        return TooManyRequests(
            f"tenant {tenant!r} holds {quota.max_scenarios} scenarios that have not ended, its quota; "
            "shut one down, then retry",
            retry_after_seconds=quota.retry_after_seconds,
        )
    if quota.max_analysis_fps is not None:
        analysed = _analysed_fps(session, tenant, unrated_fps=quota.unrated_fps)
        asked = analysis_fps or quota.unrated_fps
        if analysed + asked > quota.max_analysis_fps + 1e-9:
            return TooManyRequests(
                f"tenant {tenant!r} analyses {analysed:g} frames/s in scenarios that have not ended; "
                f"{asked:g} more would pass its quota of {quota.max_analysis_fps:g}: shut one down, then retry",
                retry_after_seconds=quota.retry_after_seconds,
            )
    return None


def _analysed_fps(session: Session, tenant: str, *, unrated_fps: float) -> float:
    """The frames per second the tenant's scenarios that have not ended analyse together (at most its
    scenario quota of rows: already counted above)."""
    rate = func.coalesce(Scenario.analysis_fps, unrated_fps)
    query = select(func.coalesce(func.sum(rate), 0.0)).where(
        Scenario.tenant == tenant, Scenario.status.in_([state.value for state in LIVE_STATES])
    )
    return float(session.scalar(query) or 0.0)


def _count(session: Session, states: Iterable[ScenarioStatus], *, at_most: int, tenant: str | None = None) -> int:
    """How many scenarios (of ``tenant``, if given) are in ``states``, counted up to ``at_most``: an
    index-only scan of ix_scenarios_status_created (ix_scenarios_tenant_status_created) that stops
    there, however many there are."""
    query = select(literal(1)).where(Scenario.status.in_([state.value for state in states]))
    if tenant is not None:
        query = query.where(Scenario.tenant == tenant)
    return int(session.scalar(select(func.count()).select_from(query.limit(at_most).subquery())) or 0)


def _replay(
    session: Session,
    tenant: str,
    camera: _Camera,
    detector: DetectorSpec,
    analysis_fps: float | None,
    name: str | None,
    idempotency_key: str,
) -> Created | None:
    """The scenario an earlier request of ``tenant`` with ``idempotency_key`` made, if any;
    IdempotencyKeyReused if that request differed."""
    existing = session.execute(
        select(
            Scenario.scenario_uuid,
            Scenario.status,
            Scenario.camera_url,
            Scenario.detector,
            Scenario.detector_settings,
            Scenario.analysis_fps,
            Scenario.name,
        ).where(Scenario.tenant == tenant, Scenario.idempotency_key == idempotency_key)
    ).one_or_none()
    if existing is None:
        return None
    same_camera = camera.keyring.same_camera(existing.camera_url, camera.url)
    if not same_camera or tuple(existing[3:]) != (detector.name, detector.settings, analysis_fps, name):
        raise IdempotencyKeyReused("this Idempotency-Key was already used with a different request")
    return Created(existing.scenario_uuid, ScenarioStatus(existing.status), created=False)


def is_stale(
    *, status: ScenarioStatus, heartbeat_at: datetime | None, now: datetime, stale_after_seconds: float
) -> bool:
    """Should the scenario's runner be running (LEASED_STATES) while its lease is missing or lapsed?"""
    if status not in LEASED_STATES:
        return False
    return heartbeat_at is None or now - heartbeat_at > timedelta(seconds=stale_after_seconds)


# A scenario with its runner's lease, wait reason and restarts (NULLs without a workers row), the
# results its runs dropped, and now().
_RuntimeRow = tuple[Scenario, datetime | None, str | None, int, int, datetime]


def _with_runtime() -> Select[*_RuntimeRow]:
    dropped = (
        select(func.coalesce(func.sum(ResultDrops.dropped), 0))
        .where(ResultDrops.scenario_uuid == Scenario.scenario_uuid)
        .scalar_subquery()
    )
    # The database's clock, not ours: the runtime renews heartbeat_at with now() too.
    return select(
        Scenario, Worker.heartbeat_at, Worker.wait_reason, Worker.restart_count, dropped, func.now()
    ).outerjoin(Worker, Worker.scenario_uuid == Scenario.scenario_uuid)


def _view(row: Row[*_RuntimeRow], *, stale_after_seconds: float) -> ScenarioView:
    scenario, heartbeat_at, wait_reason, restart_count, dropped, now = row
    stale = is_stale(
        status=ScenarioStatus(scenario.status),
        heartbeat_at=heartbeat_at,
        now=now,
        stale_after_seconds=stale_after_seconds,
    )
    runtime = Runtime(
        heartbeat_at=heartbeat_at,
        stale=stale,
        wait_reason=wait_reason,
        restarts=restart_count or 0,
        results_dropped=int(dropped),
    )
    return ScenarioView(scenario, runtime)


def get_scenario(
    *, session: Session, tenant: str, scenario_uuid: uuid.UUID, stale_after_seconds: float
) -> ScenarioView:
    """The scenario of ``tenant`` with its runtime view, or NotFound (also when another tenant's)."""
    row = session.execute(
        _with_runtime().where(Scenario.scenario_uuid == scenario_uuid, Scenario.tenant == tenant)
    ).one_or_none()
    if row is None:
        raise NotFound(f"scenario {scenario_uuid} not found")
    return _view(row, stale_after_seconds=stale_after_seconds)


def list_scenarios(
    *,
    session: Session,
    tenant: str,
    status: ScenarioStatus | None,
    limit: int,
    cursor: str | None,
    stale_after_seconds: float,
) -> tuple[list[ScenarioView], str | None]:
    """The tenant's scenarios, newest first, optionally of one status, with their runtime views; returns
    the page and the cursor of the next one."""
    query = (
        _with_runtime()
        .where(Scenario.tenant == tenant)
        .order_by(Scenario.created_at.desc(), Scenario.scenario_uuid.desc())
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(Scenario.status == status.value)
    if cursor is not None:
        created_at, last_uuid = decode_cursor(cursor)
        query = query.where(tuple_(Scenario.created_at, Scenario.scenario_uuid) < tuple_(created_at, last_uuid))
    views = [_view(row, stale_after_seconds=stale_after_seconds) for row in session.execute(query)]
    if len(views) <= limit:
        return views, None
    page = views[:limit]
    last = page[-1].scenario
    return page, encode_cursor(last.created_at, last.scenario_uuid)


def request_shutdown(*, session: Session, tenant: str, scenario_uuid: uuid.UUID) -> ShutdownOutcome:
    """Move the tenant's scenario to init_shutdown and queue its shutdown command; a no-op if already
    stopping; NotFound (also when another tenant's)."""
    with session.begin():
        scenario = session.scalars(
            select(Scenario).where(Scenario.scenario_uuid == scenario_uuid, Scenario.tenant == tenant).with_for_update()
        ).one_or_none()
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
                tenant=tenant,
            ),
        )
    log.info(
        "scenario shutdown requested", extra={"scenario_uuid": str(scenario_uuid), "previous_status": current.value}
    )
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
        raise InvalidRequest(
            ("query", "cursor"), "cursor is not valid; use next_cursor from the previous page"
        ) from None
    if position[0].tzinfo is None:
        raise InvalidRequest(("query", "cursor"), "cursor is not valid; use next_cursor from the previous page")
    return position
