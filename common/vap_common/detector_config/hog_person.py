"""``hog_person``: OpenCV's built-in HOG + linear SVM people detector."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vap_common.detector_config import DetectorConfig


class HogPersonConfig(DetectorConfig):
    type: Literal["hog_person"] = "hog_person"
    win_stride_px: int = Field(default=8, ge=1, le=64)
    padding_px: int = Field(default=8, ge=0, le=64)
    scale: float = Field(default=1.05, gt=1.0, le=2.0)
    # SVM margin a window needs; 0 keeps every positive window (confidence = sigmoid(margin) > 0.5).
    hit_threshold: float = 0.0
    # Downscale wider frames first: faster, but people must stay at least 128 px tall to be found.
    process_width_px: int | None = Field(default=None, ge=64)
