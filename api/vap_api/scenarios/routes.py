"""Scenario endpoints: thin, each validates, calls one service function and shapes the answer."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status

from vap_api.deps import SessionDep, SettingsDep
from vap_api.scenarios import rules, service
from vap_api.scenarios.schemas import DetectorOut, ScenarioInit, ScenarioOut, ScenarioPage, ScenarioState
from vap_common.contracts import DetectorSpec
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.redact import redact_text, redact_url
from vap_common.schema import Scenario

router = APIRouter(prefix="/api/v1", tags=["scenarios"])

_ERRORS = {404: {"description": "No such scenario"}, 422: {"description": "Invalid request"}}


@router.post(
    "/scenario/init",
    status_code=status.HTTP_201_CREATED,
    response_model=ScenarioState,
    responses={200: {"model": ScenarioState, "description": "Same Idempotency-Key as an earlier request: that scenario"}, **_ERRORS},
)
def init_scenario(
    body: ScenarioInit,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> ScenarioState:
    """Register a camera stream; the scenario starts asynchronously (status `init_startup`)."""
    rules.check_init(body, settings=settings)
    rules.check_idempotency_key(idempotency_key, max_length=settings.max_idempotency_key_length)
    outcome = service.create_scenario(
        session=session,
        camera_url=body.camera_url,
        detector=DetectorSpec(name=body.detector.name, settings=body.detector.settings),
        name=body.name,
        idempotency_key=idempotency_key,
    )
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return ScenarioState(scenario_uuid=outcome.scenario_uuid, status=outcome.status)


@router.get("/scenario/{scenario_uuid}", response_model=ScenarioOut, responses=_ERRORS)
def get_scenario(scenario_uuid: UUID, session: SessionDep) -> ScenarioOut:
    """One scenario; any password in its camera URL is masked."""
    return _scenario_out(service.get_scenario(session=session, scenario_uuid=scenario_uuid))


@router.get("/scenarios", response_model=ScenarioPage, responses={422: _ERRORS[422]})
def list_scenarios(
    session: SessionDep,
    settings: SettingsDep,
    status_filter: Annotated[ScenarioStatus | None, Query(alias="status")] = None,
    limit: Annotated[int | None, Query(ge=1, description="Page size (bounded by the server's maximum)")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ScenarioPage:
    """Scenarios, newest first, optionally of one status; follow `next_cursor` for the next page."""
    size = min(limit or settings.list_default_limit, settings.list_max_limit)
    rows, next_cursor = service.list_scenarios(session=session, status=status_filter, limit=size, cursor=cursor)
    return ScenarioPage(items=[_scenario_out(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/scenario/{scenario_uuid}/shutdown",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ScenarioState,
    responses={200: {"model": ScenarioState, "description": "Already stopping or stopped: its current state, nothing done"}, **_ERRORS},
)
def shutdown_scenario(scenario_uuid: UUID, session: SessionDep, response: Response) -> ScenarioState:
    """Ask the scenario to stop (status `init_shutdown`); a no-op when it is already stopping or stopped."""
    outcome = service.request_shutdown(session=session, scenario_uuid=scenario_uuid)
    if not outcome.requested:
        response.status_code = status.HTTP_200_OK
    return ScenarioState(scenario_uuid=outcome.scenario_uuid, status=outcome.status)


def _scenario_out(scenario: Scenario) -> ScenarioOut:
    return ScenarioOut(
        scenario_uuid=scenario.scenario_uuid,
        name=scenario.name,
        status=ScenarioStatus(scenario.status),
        camera_url=redact_url(scenario.camera_url),
        detector=DetectorOut(name=scenario.detector, settings=scenario.detector_settings),
        error_reason=FailureReason(scenario.error_reason) if scenario.error_reason else None,
        error_message=redact_text(scenario.error_message) if scenario.error_message else None,
        created_at=scenario.created_at,
        updated_at=scenario.updated_at,
    )
