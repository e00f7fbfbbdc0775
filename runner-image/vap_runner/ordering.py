"""Publishes results in frame order although inference processes finish them in any order."""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

_ABANDONED = object()


class FrameOrder(Generic[T]):
    """Frames are ``expect``-ed in the order they were sent; ``ready`` yields finished ones only up to
    the first unfinished frame. An abandoned frame is skipped, not waited for."""

    def __init__(self) -> None:
        self._expected: deque[int] = deque()
        self._done: dict[int, object] = {}

    def expect(self, frame_number: int) -> None:
        self._expected.append(frame_number)

    def complete(self, frame_number: int, result: T) -> None:
        self._done[frame_number] = result

    def abandon(self, frame_number: int) -> None:
        self._done[frame_number] = _ABANDONED

    def ready(self) -> list[tuple[int, T]]:
        released: list[tuple[int, T]] = []
        while self._expected and self._expected[0] in self._done:
            frame_number = self._expected.popleft()
            result = self._done.pop(frame_number)
            if result is not _ABANDONED:
                released.append((frame_number, result))  # type: ignore[arg-type]
        return released

    def __len__(self) -> int:
        """Frames expected and not released yet."""
        return len(self._expected)
