"""GET /api/v1/scenario/{scenario_uuid}/events and /event-counts."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from vap_api.deps import AUTH_RESPONSES, ReaderDep, SessionDep, SettingsDep
from vap_api.events import service
from vap_api.events.schemas import EventCountsOut, EventsOut
from vap_common.contracts import MAX_CLASS_NAME_LENGTH, EventType

router = APIRouter(prefix="/api/v1", tags=["events"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    404: {"description": "No such scenario (or one of another tenant)"},
    422: {"description": "Invalid query parameter (named in the error's `loc`)"},
    503: {"description": "The database is unreachable; retry after Retry-After seconds"},
}
Since = Annotated[AwareDatetime | None, Query(description="Captured at or after (ISO 8601 with a time zone)")]
Until = Annotated[AwareDatetime | None, Query(description="Captured before (ISO 8601 with a time zone)")]


@router.get(
    "/scenario/{scenario_uuid}/events",
    response_model=EventsOut,
    description="What the scenario's tracked objects did, each event once, in the order stored. Start without "
    "`cursor`, then pass each response's `next_cursor` as `cursor` (present on every page, also an empty one).",
    responses=_RESPONSES,
)
def list_events(
    scenario_uuid: UUID,
    caller: ReaderDep,
    session: SessionDep,
    settings: SettingsDep,
    since: Since = None,
    until: Until = None,
    event_type: Annotated[list[EventType] | None, Query(alias="type", description="Repeat for several")] = None,
    zone: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    line: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    class_name: Annotated[str | None, Query(alias="class", min_length=1, max_length=MAX_CLASS_NAME_LENGTH)] = None,
    cursor: Annotated[str | None, Query(max_length=100, description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int | None, Query(ge=1, description="Events per page (default 100, capped at the maximum)")] = (
        None
    ),
) -> EventsOut:
    """A page of the scenario's events, filtered; follow `next_cursor`."""
    service.check_window(since, until)
    page = service.get_page(
        session=session,
        tenant=caller.tenant,
        scenario_uuid=scenario_uuid,
        cursor=cursor,
        where=service.EventFilter(event_type, zone, line, class_name, since, until),
        limit=min(limit or settings.prediction_default_limit, settings.prediction_max_limit),
    )
    return EventsOut(scenario_uuid=scenario_uuid, events=page.events, next_cursor=page.next_cursor)


@router.get(
    "/scenario/{scenario_uuid}/event-counts",
    response_model=EventCountsOut,
    description="How many events per time bucket (of capture time, aligned to the Unix epoch) and per "
    "(zone or line, class, type, direction), computed by the database.",
    responses=_RESPONSES,
)
def count_events(
    scenario_uuid: UUID,
    caller: ReaderDep,
    session: SessionDep,
    since: Since = None,
    until: Until = None,
    bucket_seconds: Annotated[int, Query(ge=1, le=86_400, description="Width of a time bucket")] = 60,
) -> EventCountsOut:
    """Event counts per bucket and group."""
    service.check_window(since, until)
    counts = service.count(
        session=session,
        tenant=caller.tenant,
        scenario_uuid=scenario_uuid,
        where=service.EventFilter(since=since, until=until),
        bucket_seconds=bucket_seconds,
    )
    return EventCountsOut(
        scenario_uuid=scenario_uuid, bucket_seconds=bucket_seconds, buckets=counts.buckets, truncated=counts.truncated
    )
