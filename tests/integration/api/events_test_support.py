"""Helpers of the events tests: ObjectEvents on the `events` topic and the rows they leave."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from tests.helpers import wait_until
from vap_common.contracts import EventType, ObjectEvent, encode

CAPTURED = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
_SHAPES: dict[EventType, dict[str, Any]] = {
    EventType.OBJECT_APPEARED: {},
    EventType.OBJECT_LOST: {},
    EventType.OBJECT_ENTERED: {"zone": "dock"},
    EventType.OBJECT_LEFT: {"zone": "dock", "dwell_seconds": 1.5},
    EventType.LINE_CROSSED: {"line": "gate", "direction": "left_to_right"},
}
# Servable: every row of the scenario below the snapshot xmin (another session of the shared
# cluster may still run a transaction older than the one that stored them, for a moment).
_SERVABLE = text(
    "SELECT coalesce(bool_and(stored_xact < pg_snapshot_xmin(pg_current_snapshot())), true) "
    "FROM scenario_events WHERE scenario_uuid = :u"
)


def object_event(
    scenario_uuid: uuid.UUID,
    sequence: int,
    *,
    event_type: EventType = EventType.OBJECT_APPEARED,
    run_id: str = "run-1",
    class_name: str = "person",
    seconds: float | None = None,
    **fields: Any,
) -> ObjectEvent:
    """An event of ``event_type`` with the fields its type needs (``fields`` override them), captured
    ``seconds`` (default: ``sequence``) after CAPTURED."""
    return ObjectEvent(
        scenario_uuid=scenario_uuid,
        run_id=run_id,
        sequence=sequence,
        type=event_type,
        track_id=sequence % 7,
        class_name=class_name,
        frame_number=sequence * 3,
        captured_at=CAPTURED + timedelta(seconds=sequence if seconds is None else seconds),
        **{**_SHAPES[event_type], **fields},
    )


def encoded(events: Iterable[ObjectEvent]) -> list[tuple[str, bytes]]:
    return [(str(event.scenario_uuid), encode(event)) for event in events]


def stored_keys(engine: Engine, scenario_uuid: uuid.UUID) -> list[tuple[str, int]]:
    """(run_id, sequence) of the scenario's stored events, in key order (duplicates would show)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT run_id, sequence FROM scenario_events WHERE scenario_uuid = :u ORDER BY run_id, sequence"),
            {"u": scenario_uuid},
        )
        return [(row.run_id, row.sequence) for row in rows]


def wait_events_servable(engine: Engine, scenario_uuid: uuid.UUID) -> None:
    def servable() -> bool:
        with engine.connect() as connection:
            return bool(connection.execute(_SERVABLE, {"u": scenario_uuid}).scalar_one())

    wait_until(servable, timeout_seconds=10, interval_seconds=0.02, what="the stored events below the snapshot xmin")
