"""GET /api/v1/prediction/{scenario_uuid}."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from vap_api.deps import SessionDep, SettingsDep
from vap_api.predictions import service
from vap_api.predictions.schemas import PredictionOut

router = APIRouter(prefix="/api/v1", tags=["predictions"])


@router.get(
    "/prediction/{scenario_uuid}",
    response_model=PredictionOut,  # documents the shape; the body is assembled from PostgreSQL's JSON
    responses={
        404: {"description": "No such scenario"},
        422: {"description": "Invalid request"},
        503: {"description": "The database is unreachable; retry after Retry-After seconds"},
    },
)
def get_prediction(
    scenario_uuid: UUID,
    session: SessionDep,
    settings: SettingsDep,
    after_frame: Annotated[int, Query(ge=-1, description="Return frames with a greater frame_number (poll with the last one seen)")] = -1,
    limit: Annotated[int | None, Query(ge=1, description="Frames per page (default 100; larger values are capped at the server's maximum, 1000 by default)")] = None,
) -> Response:
    """Detections per frame, ordered by frame_number, each frame once."""
    size = min(limit or settings.prediction_default_limit, settings.prediction_max_limit)
    status, results = service.get_predictions_json(session=session, scenario_uuid=scenario_uuid, after_frame=after_frame, limit=size)
    return Response(f'{{"scenario_uuid":"{scenario_uuid}","status":"{status.value}","results":{results}}}', media_type="application/json")
