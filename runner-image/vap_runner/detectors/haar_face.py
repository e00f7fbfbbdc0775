"""``haar_face``: a Viola-Jones Haar cascade from the ones shipped inside opencv-python."""

from __future__ import annotations

import cv2
import numpy as np

from vap_common.contracts import Detection
from vap_common.detector_config.haar_face import HaarFaceConfig
from vap_runner.detectors import Detector, detection, shrink


class HaarFaceDetector(Detector):
    key = "haar_face"
    config: HaarFaceConfig

    def __init__(self, config: HaarFaceConfig) -> None:
        super().__init__(config)
        self._cascade = cv2.CascadeClassifier(f"{cv2.data.haarcascades}haarcascade_{config.cascade}.xml")  # type: ignore[attr-defined]
        if self._cascade.empty():
            raise RuntimeError(f"opencv could not load the {config.cascade} cascade")

    def detect(self, frame: np.ndarray) -> list[Detection]:
        config = self.config
        small, factor = shrink(frame, config.process_width_px)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        min_size = max(8, round(config.min_size_px / factor))
        boxes, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=config.scale_factor, minNeighbors=config.min_neighbors, minSize=(min_size, min_size)
        )
        # Confidence grows with the number of overlapping hits: min_neighbors hits give 0.5.
        return [
            detection(
                "face",
                count / (count + config.min_neighbors),
                (x * factor, y * factor, (x + w) * factor, (y + h) * factor),
                frame.shape,
            )
            for (x, y, w, h), count in zip(boxes, np.ravel(neighbours), strict=True)
        ]
