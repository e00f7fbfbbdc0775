"""``mock``: deterministic fake detections for tests and load."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vap_common.detector_config import DetectorConfig


class MockConfig(DetectorConfig):
    type: Literal["mock"] = "mock"
    classes: tuple[str, ...] = Field(default=("person", "car"), min_length=1)
    max_detections: int = Field(default=3, ge=0, le=100)
    # Simulated inference time: each frame sleeps between 0 and this, chosen by its content, so that
    # parallel inference processes finish out of order the same way on every run.
    delay_ms: float = Field(default=0.0, ge=0, le=10_000)
