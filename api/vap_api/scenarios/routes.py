"""Scenario endpoints: thin, each validates, calls one service function and shapes the answer."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status

from vap_api.deps import (
    AUTH_RESPONSES,
    CameraKeyringDep,
    CameraPolicyDep,
    ReaderDep,
    SessionDep,
    SettingsDep,
    WriterDep,
)
from vap_api.scenarios import rules, service
from vap_api.scenarios.schemas import DetectorOut, RuntimeOut, ScenarioInit, ScenarioOut, ScenarioPage, ScenarioState
from vap_common.contracts import DetectorSpec
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.redact import redact_text, redact_url

router = APIRouter(prefix="/api/v1", tags=["scenarios"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    404: {"description": "No such scenario (or one of another tenant)"},
    422: {"description": "Invalid request"},
}
_DB_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "The database is unreachable; retry after Retry-After seconds"}
}


@router.post(
    "/scenario/init",
    status_code=status.HTTP_201_CREATED,
    response_model=ScenarioState,
    responses={
        200: {"model": ScenarioState, "description": "Same Idempotency-Key as an earlier request: that scenario"},
        429: {
            "description": (
                "Too many scenarios are starting, the tenant's quota is full, or the key's writes per minute are"
                " used up; retry after Retry-After seconds"
            )
        },
        **_ERRORS,
        **_DB_UNAVAILABLE,
    },
)
def init_scenario(
    body: ScenarioInit,
    caller: WriterDep,
    session: SessionDep,
    settings: SettingsDep,
    camera_policy: CameraPolicyDep,
    keyring: CameraKeyringDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> ScenarioState:
    """Register a camera stream for the key's tenant; the scenario starts asynchronously (status `init_startup`)."""
    camera_url = rules.check_init(body, settings=settings, camera_policy=camera_policy, keyring=keyring)
    rules.check_idempotency_key(idempotency_key, max_length=settings.max_idempotency_key_length)
    outcome = service.create_scenario(
        session=session,
        tenant=caller.tenant,
        camera_url=camera_url,
        keyring=keyring,
        detector=DetectorSpec(name=body.detector.name, settings=body.detector.settings),
        start_queue=service.StartQueue(
            max_starting=settings.max_starting_scenarios, retry_after_seconds=settings.start_queue_retry_after_seconds
        ),
        quota=service.Quota(
            max_scenarios=settings.quotas.of(caller.tenant).max_scenarios,
            max_analysis_fps=settings.quotas.of(caller.tenant).max_analysis_fps,
            unrated_fps=settings.max_analysis_fps,
            retry_after_seconds=settings.quotas.retry_after_seconds,
        ),
        analysis_fps=body.analysis_fps,
        name=body.name,
        idempotency_key=idempotency_key,
    )
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return ScenarioState(scenario_uuid=outcome.scenario_uuid, status=outcome.status)


@router.get("/scenario/{scenario_uuid}", response_model=ScenarioOut, responses={**_ERRORS, **_DB_UNAVAILABLE})
def get_scenario(scenario_uuid: UUID, caller: ReaderDep, session: SessionDep, settings: SettingsDep) -> ScenarioOut:
    """One scenario of the key's tenant and its runtime view; any password in its camera URL is masked."""
    return _scenario_out(
        service.get_scenario(
            session=session,
            tenant=caller.tenant,
            scenario_uuid=scenario_uuid,
            stale_after_seconds=settings.runtime_stale_after_seconds,
        )
    )


@router.get(
    "/scenarios", response_model=ScenarioPage, responses={**AUTH_RESPONSES, 422: _ERRORS[422], **_DB_UNAVAILABLE}
)
def list_scenarios(
    caller: ReaderDep,
    session: SessionDep,
    settings: SettingsDep,
    status_filter: Annotated[ScenarioStatus | None, Query(alias="status")] = None,
    limit: Annotated[int | None, Query(ge=1, description="Page size (bounded by the server's maximum)")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ScenarioPage:
    """The key's tenant's scenarios, newest first, optionally of one status; follow `next_cursor` for the next
    page."""
    size = min(limit or settings.list_default_limit, settings.list_max_limit)
    views, next_cursor = service.list_scenarios(
        session=session,
        tenant=caller.tenant,
        status=status_filter,
        limit=size,
        cursor=cursor,
        stale_after_seconds=settings.runtime_stale_after_seconds,
    )
    return ScenarioPage(items=[_scenario_out(view) for view in views], next_cursor=next_cursor)


@router.post(
    "/scenario/{scenario_uuid}/shutdown",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ScenarioState,
    responses={
        200: {"model": ScenarioState, "description": "Already stopping or stopped: its current state, nothing done"},
        429: {"description": "The key's writes per minute are used up; retry after Retry-After seconds"},
        **_ERRORS,
        **_DB_UNAVAILABLE,
    },
)
def shutdown_scenario(scenario_uuid: UUID, caller: WriterDep, session: SessionDep, response: Response) -> ScenarioState:
    """Ask the scenario to stop (status `init_shutdown`); a no-op when it is already stopping or stopped."""
    outcome = service.request_shutdown(session=session, tenant=caller.tenant, scenario_uuid=scenario_uuid)
    if not outcome.requested:
        response.status_code = status.HTTP_200_OK
    return ScenarioState(scenario_uuid=outcome.scenario_uuid, status=outcome.status)


def _scenario_out(view: service.ScenarioView) -> ScenarioOut:
    scenario, runtime = view.scenario, view.runtime
    return ScenarioOut(
        scenario_uuid=scenario.scenario_uuid,
        name=scenario.name,
        status=ScenarioStatus(scenario.status),
        camera_url=redact_url(scenario.camera_url),
        detector=DetectorOut(name=scenario.detector, settings=scenario.detector_settings),
        analysis_fps=scenario.analysis_fps,
        error_reason=FailureReason(scenario.error_reason) if scenario.error_reason else None,
        error_message=redact_text(scenario.error_message) if scenario.error_message else None,
        created_at=scenario.created_at,
        updated_at=scenario.updated_at,
        runtime=RuntimeOut(
            heartbeat_at=runtime.heartbeat_at,
            stale=runtime.stale,
            wait_reason=redact_text(runtime.wait_reason) if runtime.wait_reason else None,
            restarts=runtime.restarts,
            results_dropped=runtime.results_dropped,
        ),
    )
