"""The events and event-counts responses."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from vap_common.contracts import EventType

Direction = Literal["left_to_right", "right_to_left"]


class EventOut(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    event_id: str = Field(description="`{scenario_uuid}:{run_id}:{sequence}`: names the event across redeliveries")
    run_id: str = Field(description="The runner run that found it")
    sequence: int = Field(description="The event's number within its run, in the order found")
    type: EventType
    track_id: int
    class_name: str = Field(serialization_alias="class")
    frame_number: int
    captured_at: datetime
    zone: str | None = Field(description="object_entered / object_left: the zone")
    line: str | None = Field(description="line_crossed: the line")
    direction: Direction | None = Field(
        description="line_crossed, as seen walking the line from its first point to its second"
    )
    dwell_seconds: float | None = Field(description="object_left: the time the object spent in the zone")


class EventsOut(BaseModel):
    scenario_uuid: UUID
    events: list[EventOut] = Field(description="In the order they were stored, each event once")
    next_cursor: str = Field(
        description="Pass as `cursor` to get the events stored after this page; always present, also on "
        "a short or empty page, so a poller keeps following it"
    )


class EventCountOut(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    start: datetime = Field(description="Start of the time bucket (capture time), aligned to the Unix epoch")
    zone: str | None
    line: str | None
    class_name: str = Field(serialization_alias="class")
    type: EventType
    direction: Direction | None
    count: int


class EventCountsOut(BaseModel):
    scenario_uuid: UUID
    bucket_seconds: int
    buckets: list[EventCountOut] = Field(description="Ordered by bucket start, then zone, line, class, type, direction")
    truncated: bool = Field(description="True if there were more groups than one response holds: narrow since/until")
