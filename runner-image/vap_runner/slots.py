"""Shared-memory frame slots: the reader decodes a frame straight into one, an inference process maps it by name.

No frame is copied or pickled on its way to an inference process: OpenCV writes the decoded frame into the slot
(``VideoCapture.read(view)``) and the inference process's pipe carries only a :class:`SlotRef`.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from multiprocessing.shared_memory import SharedMemory
from typing import NamedTuple

import numpy as np


class SlotRef(NamedTuple):
    """What an inference process needs to find a frame: a few bytes on the pipe instead of the frame itself."""

    position: int  # which of the slots
    name: str
    shape: tuple[int, ...]


class FrameSlots:
    """The main process's side: up to ``count`` buffers of the current frame size, free or in use,
    together at most ``max_bytes``. A buffer is made when a frame finds none free, so memory follows
    what the pipeline holds (a live stream holds far fewer frames than a file read at full speed).

    The reading thread acquires slots and the main loop releases them: every method is thread-safe.
    """

    def __init__(self, count: int, *, max_bytes: int | None = None) -> None:
        self._count = count
        self._max_bytes = max_bytes
        self._blocks: list[SharedMemory] = []
        self._block_size = 0
        self._free: list[int] = []
        self._lock = threading.Lock()

    def acquire(self, shape: tuple[int, ...]) -> SlotRef | None:
        """A free slot for a frame of ``shape``, or None when there is none now. A frame bigger than the
        slots (a camera back with a higher resolution) gets one only when all are free to be re-made."""
        nbytes = math.prod(shape)
        with self._lock:
            if nbytes > self._block_size:
                if len(self._free) < len(self._blocks):
                    return None
                self._discard_all()
                self._block_size = nbytes
            if self._free:
                # The slot released last: its memory is the likeliest to still be in the CPU's caches, which
                # makes decoding into it cheaper than into one untouched for a while.
                index = self._free.pop()
            elif self._room_for_another():
                index = len(self._blocks)
                self._blocks.append(SharedMemory(create=True, size=self._block_size))
            else:
                return None
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
            self._discard_all()

    def _room_for_another(self) -> bool:
        if len(self._blocks) >= self._count:
            return False
        # Always one slot, whatever its size: a frame must be readable at all.
        return (
            not self._blocks or self._max_bytes is None or (len(self._blocks) + 1) * self._block_size <= self._max_bytes
        )

    def _discard_all(self) -> None:
        # Inference processes re-map a slot whose name changed (see SlotViews).
        for block in self._blocks:
            _discard(block)
        self._blocks = []
        self._free = []


class SlotViews:
    """An inference process's side: slots mapped once and re-mapped only when the main process re-made them."""

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


def shared_memory_budget(wanted_bytes: int, *, directory: str = "/dev/shm") -> int:
    """``wanted_bytes``, or 3/4 of the free space in ``directory`` (where SharedMemory lives) if that is less:
    a write to shared memory the file system has no room for kills the process (SIGBUS), and container
    runtimes give a small /dev/shm (64 MiB) unless the Pod mounts its own."""
    try:
        stats = os.statvfs(directory)
    except OSError:
        return wanted_bytes
    return min(wanted_bytes, stats.f_bavail * stats.f_frsize * 3 // 4)


def _discard(block: SharedMemory) -> None:
    block.unlink()
    # A view still held (e.g. by a reading thread that did not stop in time) keeps the mapping until
    # the process ends; the memory itself is freed once every process has let go of it.
    with contextlib.suppress(BufferError):
        block.close()


def _frame_view(block: SharedMemory, shape: tuple[int, ...]) -> np.ndarray:
    return np.ndarray(shape, dtype=np.uint8, buffer=block.buf)
