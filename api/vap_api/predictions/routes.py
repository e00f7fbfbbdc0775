"""GET /api/v1/prediction/{scenario_uuid}."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from vap_api.deps import AUTH_RESPONSES, ReaderDep, SessionDep, SettingsDep
from vap_api.predictions import service
from vap_api.predictions.schemas import PredictionOut

router = APIRouter(prefix="/api/v1", tags=["predictions"])

_DESCRIPTION = """Detections per analysed frame, each result once, in the order they were stored.

**Paging: the cursor is the paging key.** Start without `cursor`, then pass each response's
`next_cursor` as `cursor`: it is present on every page (also a short or empty one), so a client
polls for new results by following it. It never skips or repeats a result, also across runner
restarts (a restarted runner is a new `run_id` that numbers its frames from 0 again): a live
camera's new run is new footage and is served in full; a file scenario's rerun reads the same
frames again and adds only frame numbers no earlier run stored. A result is served once every write
transaction that began before the one that stored it has ended (usually within milliseconds).

`after_frame` is kept for older clients: it only filters (`frame_number > after_frame`); after a
runner restart it hides the new run's frames until their numbers pass it. Use the cursor instead."""


@router.get(
    "/prediction/{scenario_uuid}",
    response_model=PredictionOut,  # documents the shape; the body is assembled from PostgreSQL's JSON
    description=_DESCRIPTION,
    responses={
        **AUTH_RESPONSES,
        404: {"description": "No such scenario (or one of another tenant)"},
        422: {"description": "Invalid request (e.g. a `cursor` that is not a `next_cursor` of this API)"},
        503: {"description": "The database is unreachable; retry after Retry-After seconds"},
    },
)
def get_prediction(
    scenario_uuid: UUID,
    caller: ReaderDep,
    session: SessionDep,
    settings: SettingsDep,
    cursor: Annotated[
        str | None, Query(max_length=100, description="`next_cursor` of the previous page; omit for the first page")
    ] = None,
    after_frame: Annotated[
        int | None,
        Query(ge=-1, description="Older clients' filter: only frames with a greater frame_number (page with `cursor`)"),
    ] = None,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            description=(
                "Results per page (default 100; larger values are capped at the server's maximum, 1000 by default)"
            ),
        ),
    ] = None,
) -> Response:
    """Detections per frame, in stored order, each result once; follow `next_cursor`."""
    size = min(limit or settings.prediction_default_limit, settings.prediction_max_limit)
    page = service.get_page(
        session=session,
        tenant=caller.tenant,
        scenario_uuid=scenario_uuid,
        cursor=cursor,
        after_frame=after_frame,
        limit=size,
    )
    head = f'{{"scenario_uuid":"{scenario_uuid}","status":"{page.status.value}"'
    return Response(
        f'{head},"results":{page.results_json},"next_cursor":"{page.next_cursor}"}}', media_type="application/json"
    )
