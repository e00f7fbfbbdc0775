"""The `workers` table: the orchestrator's record of each scenario's runner, kept current by the runtimes."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from vap_common.contracts import DetectorSpec, ScenarioCommand, utc_now
from vap_common.lifecycle import ScenarioStatus, is_terminal
from vap_common.schema import Worker
from vap_operator.decisions import CommandEffect, DesiredState, WorkerState, next_worker_status, worker_id_for


def lock(session: Session, scenario_uuid: UUID) -> Worker | None:
    """The scenario's row, locked until the transaction ends (serialises concurrent commands)."""
    return session.scalars(select(Worker).where(Worker.scenario_uuid == scenario_uuid).with_for_update()).one_or_none()


def state_of(row: Worker | None) -> WorkerState | None:
    if row is None:
        return None
    return WorkerState(desired_state=DesiredState(row.desired_state), status=ScenarioStatus(row.status))


def lock_or_create(session: Session, command: ScenarioCommand, effect_if_new: CommandEffect) -> tuple[Worker, bool]:
    """Lock the row, inserting it with ``effect_if_new`` when absent; returns (row, created).

    ``ON CONFLICT DO NOTHING`` then ``SELECT ... FOR UPDATE``: a concurrent orchestrator that inserted
    first wins, and this one then decides on its row like on a replay.
    """
    inserted = session.execute(
        insert(Worker)
        .values(
            worker_id=worker_id_for(command.scenario_uuid),
            scenario_uuid=command.scenario_uuid,
            tenant=command.tenant,
            camera_url=command.camera_url,
            detector=command.detector.model_dump(mode="json"),
            analysis_fps=command.analysis_fps,
            status=effect_if_new.status.value,
            desired_state=effect_if_new.desired_state.value,
        )
        .on_conflict_do_nothing()
        .returning(Worker.worker_id)
    ).first()
    row = lock(session, command.scenario_uuid)
    if row is None:  # the conflict was on worker_id of another scenario: impossible with derived ids
        raise RuntimeError(f"workers row for {command.scenario_uuid} neither inserted nor found")
    return row, inserted is not None


def apply_effect(row: Worker, effect: CommandEffect) -> None:
    """Write a command's effect onto a locked row."""
    row.desired_state = effect.desired_state.value
    row.status = effect.status.value
    row.updated_at = utc_now()


def detector_of(row: Worker) -> DetectorSpec:
    return DetectorSpec.model_validate(row.detector or {})


@dataclass(frozen=True)
class RunnerRecord:
    """What a runtime reports about a runner; None fields are left unchanged."""

    status: ScenarioStatus | None = None
    process_pid: int | None = None
    clear_process_pid: bool = False
    pod_name: str | None = None
    restart_count: int | None = None
    last_error: str | None = None
    started: bool = False
    stopped: bool = False
    wait_reason: str | None = None  # why it is not running yet (e.g. capacity)
    clear_wait_reason: bool = False


def record(session: Session, scenario_uuid: UUID, report: RunnerRecord) -> None:
    """Update the row of a scenario from its runtime. The status only ever moves forward."""
    row = lock(session, scenario_uuid)
    if row is None:
        return
    values: dict[str, Any] = {}
    if (
        report.status is not None
        and (status := next_worker_status(ScenarioStatus(row.status), report.status)) is not None
    ):
        values["status"] = status.value
    if report.process_pid is not None:
        values["process_pid"] = report.process_pid
    elif report.clear_process_pid:
        values["process_pid"] = None
    if report.pod_name is not None:
        values["pod_name"] = report.pod_name
    if report.restart_count is not None:
        values["restart_count"] = report.restart_count
    if report.last_error is not None:
        values["last_error"] = report.last_error[:2000]
    if report.wait_reason is not None:
        values["wait_reason"] = report.wait_reason[:2000]
    elif report.clear_wait_reason:
        values["wait_reason"] = None
    now: datetime = utc_now()
    if report.started and row.started_at is None:
        values["started_at"] = now
    if report.stopped:
        values["stopped_at"] = now
    if values:
        values["updated_at"] = func.now()
        session.execute(update(Worker).where(Worker.scenario_uuid == scenario_uuid).values(**values))


def renew_leases(session: Session, scenario_uuids: Collection[UUID]) -> None:
    """Renew the runtime's lease (heartbeat_at) on the runners it knows to be running."""
    if scenario_uuids:
        session.execute(
            update(Worker).where(Worker.scenario_uuid.in_(list(scenario_uuids))).values(heartbeat_at=func.now())
        )


def runnable(session: Session) -> list[Worker]:
    """Rows whose runner should be running: desired active and not in a terminal status."""
    rows = session.scalars(
        select(Worker).where(Worker.desired_state == DesiredState.ACTIVE.value).order_by(Worker.created_at)
    )
    return [row for row in rows if not is_terminal(ScenarioStatus(row.status))]


def stopping(session: Session) -> list[Worker]:
    """Rows asked to stop whose stop was not yet reported (status not terminal)."""
    rows = session.scalars(
        select(Worker).where(Worker.desired_state == DesiredState.INACTIVE.value).order_by(Worker.created_at)
    )
    return [row for row in rows if not is_terminal(ScenarioStatus(row.status))]


def with_pid(session: Session) -> list[Worker]:
    """Rows that still name a runner process (left by a runtime that died)."""
    return list(session.scalars(select(Worker).where(Worker.process_pid.is_not(None))))


def get(session: Session, scenario_uuid: UUID) -> Worker | None:
    return session.scalars(select(Worker).where(Worker.scenario_uuid == scenario_uuid)).one_or_none()
