"""``motion``: MOG2 background subtraction, one box around each moving region.

The background model is per worker process: with MAX_WORKERS > 1 each worker learns from the frames
it is given (every n-th one), which is enough for a fixed camera.
"""

from __future__ import annotations

import cv2
import numpy as np

from vap_common.contracts import Detection
from vap_common.detector_config.motion import MotionConfig
from vap_runner.detectors import Detector, detection, shrink

_FOREGROUND = 255  # MOG2 marks shadows 127 when shadow detection is on; those are not motion


class MotionDetector(Detector):
    key = "motion"
    config: MotionConfig

    def __init__(self, config: MotionConfig) -> None:
        super().__init__(config)
        self._subtractor = cv2.createBackgroundSubtractorMOG2(
            history=config.history_frames, varThreshold=config.var_threshold, detectShadows=config.detect_shadows
        )
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self._frames_seen = 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        config = self.config
        small, factor = shrink(frame, config.process_width_px)
        mask = self._subtractor.apply(cv2.GaussianBlur(small, (5, 5), 0))
        self._frames_seen += 1
        if self._frames_seen <= config.warmup_frames:
            return []
        moving = cv2.morphologyEx((mask == _FOREGROUND).astype(np.uint8), cv2.MORPH_OPEN, self._kernel)
        moving = cv2.dilate(moving, self._kernel, iterations=2)
        contours, _ = cv2.findContours(moving, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        found = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w * h * factor * factor < config.min_area_px:
                continue
            # Confidence: how much of the box actually moved.
            fill = float(moving[y : y + h, x : x + w].mean())
            found.append(
                detection("motion", fill, (x * factor, y * factor, (x + w) * factor, (y + h) * factor), frame.shape)
            )
        return found
