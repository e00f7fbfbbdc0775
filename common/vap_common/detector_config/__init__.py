"""What each detector plug-in accepts as settings: one pydantic config model per module of this
package (no OpenCV here), and from them the one list of detector names.

The API validates a scenario's ``detector.settings`` with :func:`validate` when it is registered (a 422
naming the field), and the runner builds its detectors from the same configs (``vap_runner.detectors``,
whose implementations are tested to match :func:`names`). Adding a detector is adding its config
module here and its implementation module there; no list of names is kept anywhere else.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class InvalidDetectorConfig(ValueError):
    """An unknown detector name, or settings its config model refuses; ``field`` is the setting's
    path within the settings object (empty: the name, or the settings as a whole)."""

    def __init__(self, message: str, *, field: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.field = field


class DetectorConfig(BaseModel):
    """Base of the config models: each subclass sets ``type: Literal["<name>"] = "<name>"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


@cache
def configs() -> dict[str, type[DetectorConfig]]:
    """Every detector's config model, by name (the modules of this package)."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return {model.model_fields["type"].default: model for model in DetectorConfig.__subclasses__()}


def names() -> list[str]:
    return sorted(configs())


def validate(name: str, settings: dict[str, Any]) -> DetectorConfig:
    """The config of detector ``name`` from a scenario's settings, or :class:`InvalidDetectorConfig`."""
    model = configs().get(name)
    if model is None:
        raise InvalidDetectorConfig(f"unknown detector {name!r}; use one of: {', '.join(names())}")
    if settings.get("type", name) != name:
        raise InvalidDetectorConfig(
            f"detector settings say type {settings['type']!r} but the detector is {name!r}", field=("type",)
        )
    try:
        return model.model_validate({**settings, "type": name})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc'])) or 'settings'}: {item['msg']}" for item in error.errors()
        )
        raise InvalidDetectorConfig(f"detector {name!r}: {problems}", field=tuple(error.errors()[0]["loc"])) from error
