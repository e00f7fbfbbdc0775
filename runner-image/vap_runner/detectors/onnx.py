"""``onnx``: a user-supplied YOLO-style ONNX detection model run by OpenCV's DNN module."""

from __future__ import annotations

import cv2
import numpy as np

from vap_common.contracts import Detection
from vap_common.detector_config import InvalidDetectorConfig
from vap_common.detector_config.onnx import OnnxConfig
from vap_runner.detectors import Detector, detection

_LETTERBOX_GREY = 114  # the padding value YOLO models are trained with


class OnnxDetector(Detector):
    key = "onnx"
    config: OnnxConfig

    @classmethod
    def check(cls, config: OnnxConfig) -> None:
        if not config.model_path.is_file():
            raise InvalidDetectorConfig(
                f"detector 'onnx': model_path: {config.model_path} is not a file on this runner", field=("model_path",)
            )

    def __init__(self, config: OnnxConfig) -> None:
        super().__init__(config)
        self._net = cv2.dnn.readNetFromONNX(str(config.model_path))

    def detect(self, frame: np.ndarray) -> list[Detection]:
        config = self.config
        canvas, scale, pad_x, pad_y = self._letterbox(frame)
        blob = cv2.dnn.blobFromImage(canvas, scalefactor=1 / 255, swapRB=True)
        self._net.setInput(blob)
        rows = np.asarray(self._net.forward(), dtype=np.float32)[0]
        if config.output_layout == "yolov8":
            rows = rows.T
            boxes, scores = rows[:, :4], rows[:, 4:]
        else:
            boxes, scores = rows[:, :4], rows[:, 5:] * rows[:, 4:5]
        class_ids = scores.argmax(axis=1)
        confidences = scores[np.arange(len(scores)), class_ids]
        keep = confidences >= config.confidence_threshold
        boxes, class_ids, confidences = boxes[keep], class_ids[keep], confidences[keep]
        # (centre, size) in letterboxed input pixels -> (x1, y1, x2, y2) in original pixels.
        x1 = (boxes[:, 0] - boxes[:, 2] / 2 - pad_x) / scale
        y1 = (boxes[:, 1] - boxes[:, 3] / 2 - pad_y) / scale
        widths, heights = boxes[:, 2] / scale, boxes[:, 3] / scale
        rects = np.stack([x1, y1, widths, heights], axis=1)
        kept = cv2.dnn.NMSBoxesBatched(
            rects.tolist(),
            confidences.tolist(),
            class_ids.tolist(),
            config.confidence_threshold,
            config.nms_iou_threshold,
        )
        return [
            detection(
                self._class_name(int(class_ids[i])),
                float(confidences[i]),
                (x1[i], y1[i], x1[i] + widths[i], y1[i] + heights[i]),
                frame.shape,
            )
            for i in np.ravel(kept)
        ]

    def _letterbox(self, frame: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        """The frame scaled to fit the model's input, centred on grey: aspect ratio kept, as YOLO expects."""
        width, height = self.config.input_width_px, self.config.input_height_px
        scale = min(width / frame.shape[1], height / frame.shape[0])
        new_width, new_height = round(frame.shape[1] * scale), round(frame.shape[0] * scale)
        pad_x, pad_y = (width - new_width) // 2, (height - new_height) // 2
        canvas = np.full((height, width, 3), _LETTERBOX_GREY, dtype=np.uint8)
        canvas[pad_y : pad_y + new_height, pad_x : pad_x + new_width] = cv2.resize(
            frame, (new_width, new_height), interpolation=cv2.INTER_LINEAR
        )
        return canvas, scale, pad_x, pad_y

    def _class_name(self, class_id: int) -> str:
        names = self.config.class_names
        return names[class_id] if class_id < len(names) else f"class_{class_id}"
