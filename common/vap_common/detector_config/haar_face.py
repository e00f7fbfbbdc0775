"""``haar_face``: a Viola-Jones Haar cascade from the ones shipped inside opencv-python."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vap_common.detector_config import DetectorConfig


class HaarFaceConfig(DetectorConfig):
    type: Literal["haar_face"] = "haar_face"
    # A name, not a path: only cascades shipped in opencv's data folder can be chosen.
    cascade: Literal[
        "frontalface_default", "frontalface_alt", "frontalface_alt2", "frontalface_alt_tree", "profileface"
    ] = "frontalface_default"
    scale_factor: float = Field(default=1.1, gt=1.0, le=2.0)
    # Overlapping hits a face needs; higher means fewer false positives.
    min_neighbors: int = Field(default=5, ge=1)
    min_size_px: int = Field(default=24, ge=8)
    process_width_px: int | None = Field(default=None, ge=64)
