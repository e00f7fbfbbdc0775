"""``hog_person``: OpenCV's built-in HOG + linear SVM people detector (no model download)."""

from __future__ import annotations

import cv2
import numpy as np

from vap_common.contracts import Detection
from vap_common.detector_config.hog_person import HogPersonConfig
from vap_runner.detectors import Detector, detection, shrink, sigmoid


class HogPersonDetector(Detector):
    key = "hog_person"
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
            detection(
                "person",
                sigmoid(float(weight)),
                (x * factor, y * factor, (x + w) * factor, (y + h) * factor),
                frame.shape,
            )
            for (x, y, w, h), weight in zip(boxes, np.ravel(weights), strict=True)
        ]
