"""Hands decoded frames from the reading thread to the main loop."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class Frame:
    number: int  # index in a file; for a live stream, frames read since the runner started
    image: np.ndarray
    captured_at: datetime


class Wakeup:
    """A self-pipe: threads ``set`` it, the main loop waits on its file descriptor together with the
    worker pipes (``multiprocessing.connection.wait``) and ``clear``s it."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def fileno(self) -> int:
        return self._read_fd

    def set(self) -> None:
        with contextlib.suppress(BlockingIOError):  # already full of wake-ups: the waiter wakes anyway
            os.write(self._write_fd, b"x")

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 4096):
                pass

    def close(self) -> None:
        os.close(self._read_fd)
        os.close(self._write_fd)


class FrameHandoff:
    """One frame waiting for the main loop.

    Live streams (``keep_latest``): a new frame replaces one not taken yet, which counts as dropped, so
    analysis works on the newest frame when it falls behind. Files: ``put`` waits until the frame is
    taken, so every sampled frame is analysed.
    """

    def __init__(self, *, wakeup: Wakeup, on_drop: Callable[[], None]) -> None:
        self.keep_latest = False
        self._wakeup = wakeup
        self._on_drop = on_drop
        self._frame: Frame | None = None
        self._closed = False
        self._changed = threading.Condition()

    def put(self, frame: Frame) -> bool:
        """Offer ``frame``; False once closed (the frame is not taken)."""
        with self._changed:
            if self._frame is not None and self.keep_latest:
                self._on_drop()
            else:
                self._changed.wait_for(lambda: self._frame is None or self._closed)
            if self._closed:
                return False
            self._frame = frame
        self._wakeup.set()
        return True

    def take(self) -> Frame | None:
        with self._changed:
            frame, self._frame = self._frame, None
            self._changed.notify_all()
        return frame

    def close(self) -> None:
        """Refuse further frames and discard the waiting one (shutdown: frames not in flight are not analysed)."""
        with self._changed:
            self._closed = True
            self._frame = None
            self._changed.notify_all()
