"""Detector plug-ins and their registry.

Each module of this package (except ``_``-prefixed ones) defines one :class:`Detector` subclass whose
``key`` names its config model in ``vap_common.detector_config`` (the settings it accepts, shared with
the API). The registry imports them all, so adding a detector is adding that config module and a module
here; tests/unit/runner/test_detectors.py checks that the two lists of names agree.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from abc import ABC, abstractmethod
from functools import cache
from typing import Any, ClassVar

import cv2
import numpy as np

from vap_common import detector_config
from vap_common.contracts import Detection
from vap_common.detector_config import DetectorConfig, InvalidDetectorConfig


class Detector(ABC):
    """Finds objects in one BGR frame. Built once per inference process, then called frame after frame."""

    key: ClassVar[str]

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def check(cls, config: Any) -> None:
        """Refuse (InvalidDetectorConfig) what only this machine can tell, e.g. a missing model file."""

    @abstractmethod
    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Detections in pixel coordinates of ``frame``. ``frame`` is only valid during the call."""


@cache
def detectors() -> dict[str, type[Detector]]:
    """Every detector plug-in of this package, by key."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return {cls.key: cls for cls in Detector.__subclasses__()}


def validate_config(name: str, settings: dict[str, Any]) -> DetectorConfig:
    """The config of detector ``name`` built from a scenario's settings, or :class:`InvalidDetectorConfig`."""
    config = detector_config.validate(name, settings)
    if name not in detectors():
        raise InvalidDetectorConfig(f"detector {name!r} has no implementation in this runner")
    detectors()[name].check(config)
    return config


def build_detector(config: DetectorConfig) -> Detector:
    return detectors()[config.type](config)


# --- helpers shared by the plug-ins ---------------------------------------------------------------


def shrink(frame: np.ndarray, width_px: int | None) -> tuple[np.ndarray, float]:
    """``frame`` resized to ``width_px`` (never enlarged) and the factor back to original pixels."""
    if width_px is None or frame.shape[1] <= width_px:
        return frame, 1.0
    factor = frame.shape[1] / width_px
    small = cv2.resize(frame, (width_px, round(frame.shape[0] / factor)), interpolation=cv2.INTER_AREA)
    return small, factor


def detection(
    class_name: str, confidence: float, box: tuple[float, float, float, float], frame_shape: tuple[int, ...]
) -> Detection:
    """A Detection with its box clipped to the frame and values rounded for compact messages."""
    height, width = frame_shape[:2]
    x1, y1, x2, y2 = (round(float(value), 1) for value in box)
    return Detection.model_validate(
        {
            "class": class_name,
            "confidence": round(min(max(float(confidence), 0.0), 1.0), 4),
            "bbox": (
                min(max(x1, 0.0), width),
                min(max(y1, 0.0), height),
                min(max(x2, 0.0), width),
                min(max(y2, 0.0), height),
            ),
        }
    )


def sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))
