"""Detector plug-ins and their registry.

Each module of this package (except ``_``-prefixed ones) defines one :class:`Detector` subclass with
a ``key`` and a pydantic config model whose ``type`` is ``Literal[key]``. The registry imports them all,
so adding a detector is adding a module; a scenario's ``{name, settings}`` is validated through the
discriminated union of every config model.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from abc import ABC, abstractmethod
from functools import cache
from typing import Annotated, Any, ClassVar, Union

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from vap_common.contracts import Detection


class InvalidDetectorConfig(ValueError):
    """Unknown detector name or settings its config model rejects (reported as InvalidConfig)."""


class DetectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


class Detector(ABC):
    """Finds objects in one BGR frame. Built once per worker process, then called frame after frame."""

    key: ClassVar[str]
    config_model: ClassVar[type[DetectorConfig]]

    def __init__(self, config: Any) -> None:
        self.config = config

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


@cache
def _config_adapter() -> TypeAdapter[Any]:
    models = tuple(cls.config_model for cls in detectors().values())
    return TypeAdapter(Annotated[Union[models], Field(discriminator="type")])  # type: ignore[arg-type]  # noqa: UP007 - built at run time


def validate_config(name: str, settings: dict[str, Any]) -> DetectorConfig:
    """The config of detector ``name`` built from a scenario's settings, or :class:`InvalidDetectorConfig`."""
    if name not in detectors():
        raise InvalidDetectorConfig(f"unknown detector {name!r}; known: {', '.join(sorted(detectors()))}")
    if settings.get("type", name) != name:
        raise InvalidDetectorConfig(f"detector settings say type {settings['type']!r} but the detector is {name!r}")
    try:
        config: DetectorConfig = _config_adapter().validate_python({**settings, "type": name})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc'][1:])) or 'settings'}: {item['msg']}" for item in error.errors())
        raise InvalidDetectorConfig(f"detector {name!r}: {problems}") from error
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


def detection(class_name: str, confidence: float, box: tuple[float, float, float, float], frame_shape: tuple[int, ...]) -> Detection:
    """A Detection with its box clipped to the frame and values rounded for compact messages."""
    height, width = frame_shape[:2]
    x1, y1, x2, y2 = (round(float(value), 1) for value in box)
    return Detection.model_validate(
        {
            "class": class_name,
            "confidence": round(min(max(float(confidence), 0.0), 1.0), 4),
            "bbox": (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height)),
        }
    )


def sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))
