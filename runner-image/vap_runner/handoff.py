"""Hands decoded frames from the reading thread to the main loop."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from vap_runner.slots import SlotRef

# Decoded file frames that may wait for the main loop: the reader does not stop for each of its pauses.
QUEUED_FILE_FRAMES = 4
_FILE_FRAMES_PER_WAKEUP = 2


@dataclass(frozen=True)
class Frame:
    number: int  # index in a file; for a live stream, frames read since the runner started
    slot: SlotRef  # where the reader decoded it; whoever drops the frame releases the slot
    captured_at: datetime


class Wakeup:
    """A self-pipe: threads ``set`` it, the main loop waits on its file descriptor together with the
    inference process pipes (the pool's selector) and ``clear``s it."""

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
        # One read: if more wake-ups than that were pending, the waiter only wakes once more.
        with contextlib.suppress(BlockingIOError):
            os.read(self._read_fd, 4096)

    def close(self) -> None:
        os.close(self._read_fd)
        os.close(self._write_fd)


class FrameHandoff:
    """Frames waiting for the main loop.

    Live streams (``keep_latest``): one frame; a new frame replaces one not taken yet, which counts as
    dropped, so analysis works on the newest frame when it falls behind. Files: up to
    ``QUEUED_FILE_FRAMES``, and ``put`` waits while they are queued, so every sampled frame is analysed
    and the reader keeps decoding while the main loop is busy with other work.
    """

    def __init__(self, *, wakeup: Wakeup, on_drop: Callable[[Frame], None]) -> None:
        self.keep_latest = False
        self._wakeup = wakeup
        self._on_drop = on_drop
        self._frames: deque[Frame] = deque()
        self._closed = False
        self._changed = threading.Condition()

    def put(self, frame: Frame) -> bool:
        """Offer ``frame``; False once closed (the frame is not taken)."""
        with self._changed:
            if self.keep_latest:
                while self._frames:
                    self._on_drop(self._frames.popleft())
            else:
                self._changed.wait_for(lambda: len(self._frames) < QUEUED_FILE_FRAMES or self._closed)
            if self._closed:
                return False
            self._frames.append(frame)
            # A live frame wakes the main loop at once. File frames wake it two at a time: one wake-up (a
            # pipe write and a GIL hand-over) per frame would slow the reader; the main loop also takes
            # frames whenever a result wakes it, and the reader's end wakes it for the last frame.
            wake = self.keep_latest or len(self._frames) == _FILE_FRAMES_PER_WAKEUP
        if wake:
            self._wakeup.set()
        return True

    def take(self) -> Frame | None:
        if not self._frames:  # the common case needs no lock: a frame put just now also wakes the taker
            return None
        with self._changed:
            frame = self._frames.popleft() if self._frames else None
            self._changed.notify_all()
        return frame

    def close(self) -> None:
        """Refuse further frames and discard the waiting ones (shutdown: frames not in flight are not
        analysed, and no slot is acquired any more, so their slots need no release)."""
        with self._changed:
            self._closed = True
            self._frames.clear()
            self._changed.notify_all()
