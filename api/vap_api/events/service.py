"""Reading stored events: pages in stored order behind the predictions' cursor, and counts per time bucket.

Pages are ordered by (stored_xact, id) and hold only rows whose storing transaction is below the
reader's snapshot xmin, exactly as results are (``vap_api.predictions.service`` says why row ids
alone would skip events), so following ``next_cursor`` serves every event once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Text, bindparam, cast, func, select, tuple_
from sqlalchemy.orm import Session

from vap_api.errors import InvalidRequest, NotFound
from vap_api.events.schemas import EventCountOut, EventOut
from vap_api.predictions.cursor import START, Position, decode_cursor, encode_cursor
from vap_common.contracts import EventType, event_id
from vap_common.schema import Scenario, ScenarioEvent, Xid8

# Groups one counts response holds at most (a day in 1 s buckets would be 86,400 per group key).
MAX_COUNT_GROUPS = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class EventFilter:
    """Which events a page or a count covers (None: any)."""

    types: Sequence[EventType] | None = None
    zone: str | None = None
    line: str | None = None
    class_name: str | None = None
    since: datetime | None = None  # captured at or after
    until: datetime | None = None  # captured before


@dataclass(frozen=True)
class EventPage:
    events: list[EventOut]
    next_cursor: str


@dataclass(frozen=True)
class EventCounts:
    buckets: list[EventCountOut]
    truncated: bool


def get_page(
    *, session: Session, tenant: str, scenario_uuid: UUID, cursor: str | None, where: EventFilter, limit: int
) -> EventPage:
    """Up to ``limit`` events after ``cursor`` and the next page's cursor; NotFound if ``tenant`` has no
    such scenario."""
    position = START if cursor is None else decode_cursor(cursor)
    _require_scenario(session, tenant, scenario_uuid)
    event = ScenarioEvent
    after = tuple_(event.stored_xact, event.id) > tuple_(cast(str(position.stored_xact), Xid8()), position.id)
    visible = event.stored_xact < func.pg_snapshot_xmin(func.pg_current_snapshot())
    rows = session.execute(
        select(event, cast(event.stored_xact, Text).label("xact"))
        .where(*_conditions(scenario_uuid, where), after, visible)
        .order_by(event.stored_xact, event.id)
        .limit(limit)
    ).all()
    if rows:
        position = Position(int(rows[-1].xact), rows[-1].ScenarioEvent.id)
    return EventPage([_event_out(row.ScenarioEvent) for row in rows], encode_cursor(position))


def count(
    *, session: Session, tenant: str, scenario_uuid: UUID, where: EventFilter, bucket_seconds: int
) -> EventCounts:
    """Events per time bucket (of capture time) and (zone, line, class, type, direction); NotFound as get_page."""
    _require_scenario(session, tenant, scenario_uuid)
    event = ScenarioEvent
    start = func.date_bin(bindparam("bucket", timedelta(seconds=bucket_seconds)), event.captured_at, _EPOCH)
    keys = (
        start.label("start"),
        event.zone,
        event.line,
        event.class_name.label("class_name"),
        event.type,
        event.direction,
    )
    rows = session.execute(
        select(*keys, func.count().label("events"))
        .where(*_conditions(scenario_uuid, where))
        .group_by(*keys)
        .order_by(*keys)
        .limit(MAX_COUNT_GROUPS + 1)
    ).all()
    buckets = [
        EventCountOut(
            start=row.start,
            zone=row.zone,
            line=row.line,
            class_name=row.class_name,
            type=EventType(row.type),
            direction=row.direction,
            count=row.events,
        )
        for row in rows[:MAX_COUNT_GROUPS]
    ]
    return EventCounts(buckets, truncated=len(rows) > MAX_COUNT_GROUPS)


def check_window(since: datetime | None, until: datetime | None) -> None:
    """InvalidRequest naming ``until`` if the window is empty by construction."""
    if since is not None and until is not None and until <= since:
        raise InvalidRequest(("query", "until"), "until must be later than since")


def _require_scenario(session: Session, tenant: str, scenario_uuid: UUID) -> None:
    found = session.execute(
        select(Scenario.scenario_uuid).where(Scenario.scenario_uuid == scenario_uuid, Scenario.tenant == tenant)
    ).one_or_none()
    if found is None:
        raise NotFound(f"scenario {scenario_uuid} not found")


def _conditions(scenario_uuid: UUID, where: EventFilter) -> list[ColumnElement[bool]]:
    event = ScenarioEvent
    conditions = [event.scenario_uuid == scenario_uuid]
    if where.types:
        conditions.append(event.type.in_([event_type.value for event_type in where.types]))
    equal: list[tuple[Any, str | None]] = [
        (event.zone, where.zone),
        (event.line, where.line),
        (event.class_name, where.class_name),
    ]
    conditions.extend(column == value for column, value in equal if value is not None)
    if where.since is not None:
        conditions.append(event.captured_at >= where.since)
    if where.until is not None:
        conditions.append(event.captured_at < where.until)
    return conditions


def _event_out(row: ScenarioEvent) -> EventOut:
    return EventOut(
        event_id=event_id(row.scenario_uuid, row.run_id, row.sequence),
        run_id=row.run_id,
        sequence=row.sequence,
        type=EventType(row.type),
        track_id=row.track_id,
        class_name=row.class_name,
        frame_number=row.frame_number,
        captured_at=row.captured_at,
        zone=row.zone,
        line=row.line,
        direction=row.direction,  # type: ignore[arg-type]  # the contract allowed only the two values
        dwell_seconds=row.dwell_seconds,
    )
