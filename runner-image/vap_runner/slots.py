"""Shared-memory frame slots: the reader decodes a frame straight into one, a worker maps it by name.

No frame is copied or pickled on its way to a worker: OpenCV writes the decoded frame into the slot
(``VideoCapture.read(view)``) and the worker's pipe carries only a :class:`SlotRef`.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import deque
from multiprocessing.shared_memory import SharedMemory
from typing import NamedTuple

import numpy as np


class SlotRef(NamedTuple):
    """What a worker needs to find a frame: a few bytes on the pipe instead of the frame itself."""

    position: int  # which of the slots
    name: str
    shape: tuple[int, ...]


class FrameSlots:
    """The main process's side: ``count`` buffers sized for the current frame size, free or in use.

    The reading thread acquires slots and the main loop releases them: every method is thread-safe.
    """

    def __init__(self, count: int) -> None:
        self._count = count
        self._blocks: list[SharedMemory] = []
        self._free: deque[int] = deque()
        self._lock = threading.Lock()

    def acquire(self, shape: tuple[int, ...]) -> SlotRef | None:
        """A free slot for a frame of ``shape``, or None when there is none now. A frame bigger than the
        slots (a camera back with a higher resolution) gets one only when all are free to be re-made."""
        nbytes = math.prod(shape)
        with self._lock:
            if not self._blocks or nbytes > self._blocks[0].size:
                if len(self._free) < len(self._blocks):
                    return None
                self._allocate(nbytes)
            if not self._free:
                return None
            index = self._free.popleft()
            return SlotRef(index, self._blocks[index].name, shape)

    def view(self, slot: SlotRef) -> np.ndarray:
        """The slot's memory as a frame of its shape (valid until the slot is released)."""
        return _frame_view(self._blocks[slot.position], slot.shape)

    def release(self, slot: SlotRef) -> None:
        with self._lock:
            if slot.position < len(self._blocks) and self._blocks[slot.position].name == slot.name:
                self._free.append(slot.position)

    def close(self) -> None:
        with self._lock:
            for block in self._blocks:
                _discard(block)
            self._blocks = []
            self._free.clear()

    def _allocate(self, size: int) -> None:
        # Workers re-map a slot whose name changed (see SlotViews).
        self._blocks, old = [SharedMemory(create=True, size=size) for _ in range(self._count)], self._blocks
        for block in old:
            _discard(block)
        self._free = deque(range(self._count))


class SlotViews:
    """A worker's side: slots mapped once and re-mapped only when the main process re-made them."""

    def __init__(self) -> None:
        self._mapped: dict[int, SharedMemory] = {}

    def view(self, slot: SlotRef) -> np.ndarray:
        block = self._mapped.get(slot.position)
        if block is None or block.name != slot.name:
            if block is not None:
                block.close()
            block = self._mapped[slot.position] = SharedMemory(name=slot.name)
        return _frame_view(block, slot.shape)

    def close(self) -> None:
        for block in self._mapped.values():
            block.close()
        self._mapped.clear()


def _discard(block: SharedMemory) -> None:
    block.unlink()
    # A view still held (e.g. by a reading thread that did not stop in time) keeps the mapping until
    # the process ends; the memory itself is freed once every process has let go of it.
    with contextlib.suppress(BufferError):
        block.close()


def _frame_view(block: SharedMemory, shape: tuple[int, ...]) -> np.ndarray:
    return np.ndarray(shape, dtype=np.uint8, buffer=block.buf)
