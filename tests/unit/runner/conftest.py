"""Frames from the sample videos, decoded once per test session."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from tests.conftest import MEDIA

PERSON_VIDEO = MEDIA / "one-by-one-person-detection.mp4"
CAR_VIDEO = MEDIA / "car-detection.mp4"


def read_frames(path: str, numbers: set[int]) -> dict[int, np.ndarray]:
    """The frames of ``path`` with these indices (decoding stops after the last one asked for)."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    assert capture.isOpened(), f"cannot open sample video {path}: is media/ checked out?"
    frames: dict[int, np.ndarray] = {}
    index = 0
    while index <= max(numbers):
        ok, image = capture.read()
        assert ok, f"{path} ended before frame {index}"
        if index in numbers:
            frames[index] = image
        index += 1
    capture.release()
    return frames


@pytest.fixture(scope="session")
def media_frames() -> Callable[[str, set[int]], dict[int, np.ndarray]]:
    cache: dict[tuple[str, int], np.ndarray] = {}

    def frames(path: str, numbers: set[int]) -> dict[int, np.ndarray]:
        missing = {number for number in numbers if (str(path), number) not in cache}
        if missing:
            for number, image in read_frames(path, missing).items():
                cache[(str(path), number)] = image
        return {number: cache[(str(path), number)] for number in numbers}

    return frames
