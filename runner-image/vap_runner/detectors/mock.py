"""``mock``: deterministic fake detections for tests and load, a pure function of the frame's content."""

from __future__ import annotations

import hashlib
import time

import numpy as np

from vap_common.contracts import Detection
from vap_common.detector_config.mock import MockConfig
from vap_runner.detectors import Detector, detection

# Bytes of the content digest used per detection: class, confidence, x, y, width, height.
_BYTES_PER_DETECTION = 6


class MockDetector(Detector):
    key = "mock"
    config: MockConfig

    def detect(self, frame: np.ndarray) -> list[Detection]:
        config = self.config
        # A coarse grid of pixels is enough to tell frames apart and costs microseconds.
        digest = hashlib.shake_128(np.ascontiguousarray(frame[::32, ::32]).data).digest(
            2 + _BYTES_PER_DETECTION * config.max_detections
        )
        if config.delay_ms:
            time.sleep(config.delay_ms / 1000 * digest[1] / 255)
        height, width = frame.shape[:2]
        found = []
        for index in range(digest[0] % (config.max_detections + 1)):
            class_byte, confidence_byte, x, y, w, h = digest[
                2 + index * _BYTES_PER_DETECTION : 2 + (index + 1) * _BYTES_PER_DETECTION
            ]
            x1, y1 = x / 255 * width * 0.8, y / 255 * height * 0.8
            box = (x1, y1, x1 + (0.05 + w / 255 * 0.15) * width, y1 + (0.05 + h / 255 * 0.15) * height)
            found.append(
                detection(
                    config.classes[class_byte % len(config.classes)], 0.5 + confidence_byte / 510, box, frame.shape
                )
            )
        return found
