"""The prediction response: the original specification's shape, plus each result's run and the next page's cursor."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from vap_common.lifecycle import ScenarioStatus


class DetectionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    class_name: str = Field(alias="class")
    confidence: float
    bbox: list[float] = Field(description="x1, y1, x2, y2 in pixels of the original frame")


class FrameOut(BaseModel):
    frame_number: int = Field(description="The frame's number within its run (a restarted runner numbers from 0 again)")
    run_id: str = Field(
        description="The runner run that analysed the frame: a result is (scenario, run_id, frame_number)"
    )
    detections: list[DetectionOut]
    timestamp: datetime


class PredictionOut(BaseModel):
    scenario_uuid: UUID
    status: ScenarioStatus
    results: list[FrameOut] = Field(
        description="In the order they were stored (for one run: frame order), each result once; "
        "a file scenario's rerun does not repeat a frame number already served, "
        "a live scenario's new run is served in full"
    )
    next_cursor: str = Field(
        description="Pass as `cursor` to get the results stored after this page; "
        "always present, also on a short or empty page, so a poller keeps following it "
        "(it never skips or repeats a result, across runner restarts too)"
    )
