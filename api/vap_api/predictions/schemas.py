"""The prediction response, in the original specification's shape."""

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
    frame_number: int
    detections: list[DetectionOut]
    timestamp: datetime


class PredictionOut(BaseModel):
    scenario_uuid: UUID
    status: ScenarioStatus
    results: list[FrameOut] = Field(description="Ordered by frame_number; page with after_frame and limit")
