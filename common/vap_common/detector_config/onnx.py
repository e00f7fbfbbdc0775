"""``onnx``: a YOLO-style ONNX model run by OpenCV's DNN module."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from vap_common.detector_config import DetectorConfig


class OnnxConfig(DetectorConfig):
    type: Literal["onnx"] = "onnx"
    # On the runner's machine (its image or a volume): the runner checks that it is a file.
    model_path: Path
    input_width_px: int = Field(default=640, ge=8)
    input_height_px: int = Field(default=640, ge=8)
    # yolov8: output (1, 4 + classes, candidates), no objectness (also YOLO11).
    # yolov5: output (1, candidates, 5 + classes), class scores multiplied by objectness.
    # Boxes are (centre x, centre y, width, height) in input pixels in both.
    output_layout: Literal["yolov8", "yolov5"] = "yolov8"
    class_names: tuple[str, ...] = ()  # index -> name; unnamed classes are reported as class_<index>
    confidence_threshold: float = Field(default=0.25, ge=0, le=1)
    nms_iou_threshold: float = Field(default=0.45, ge=0, le=1)
