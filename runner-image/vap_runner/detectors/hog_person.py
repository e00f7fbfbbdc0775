"""``hog_person``: OpenCV's built-in HOG + linear SVM people detector (no model download)."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from vap_common.contracts import Detection
from vap_runner.detectors import Detector, DetectorConfig, detection, shrink, sigmoid


class HogPersonConfig(DetectorConfig):
    type: Literal["hog_person"] = "hog_person"
    win_stride_px: int = Field(default=8, ge=1, le=64)
    padding_px: int = Field(default=8, ge=0, le=64)
    scale: float = Field(default=1.05, gt=1.0, le=2.0)
    # SVM margin a window needs; 0 keeps every positive window (confidence = sigmoid(margin) > 0.5).
    hit_threshold: float = 0.0
    # Downscale wider frames first: faster, but people must stay at least 128 px tall to be found.
    process_width_px: int | None = Field(default=None, ge=64)


class HogPersonDetector(Detector):
    key = "hog_person"
    config_model = HogPersonConfig
    config: HogPersonConfig

    def __init__(self, config: HogPersonConfig) -> None:
        super().__init__(config)
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())  # type: ignore[attr-defined]

    def detect(self, frame: np.ndarray) -> list[Detection]:
        config = self.config
        small, factor = shrink(frame, config.process_width_px)
        boxes, weights = self._hog.detectMultiScale(
            small,
            hitThreshold=config.hit_threshold,
            winStride=(config.win_stride_px, config.win_stride_px),
            padding=(config.padding_px, config.padding_px),
            scale=config.scale,
        )
        return [
            detection("person", sigmoid(float(weight)), (x * factor, y * factor, (x + w) * factor, (y + h) * factor), frame.shape)
            for (x, y, w, h), weight in zip(boxes, np.ravel(weights), strict=True)
        ]
