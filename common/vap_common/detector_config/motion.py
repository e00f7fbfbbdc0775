"""``motion``: MOG2 background subtraction, one box around each moving region."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vap_common.detector_config import DetectorConfig


class MotionConfig(DetectorConfig):
    type: Literal["motion"] = "motion"
    history_frames: int = Field(default=200, ge=1)
    var_threshold: float = Field(default=16.0, gt=0)
    detect_shadows: bool = True
    # Regions smaller than this (in original-frame pixels) are noise.
    min_area_px: int = Field(default=600, ge=1)
    # The first frames build the background: everything looks like motion until then.
    warmup_frames: int = Field(default=5, ge=1)
    process_width_px: int | None = Field(default=320, ge=32)
