"""Shared-memory frame slots: the reader copies a frame in once, a worker maps it without pickling it."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory

import numpy as np


@dataclass(frozen=True)
class SlotRef:
    """What a worker needs to find a frame: a few bytes on the pipe instead of the frame itself."""

    index: int
    name: str
    shape: tuple[int, ...]


class FrameSlots:
    """The main process's side: ``count`` buffers sized for the current frame size, free or in use."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._blocks: list[SharedMemory] = []
        self._free: deque[int] = deque()

    def can_store(self, image: np.ndarray) -> bool:
        """A slot is free, or (for a bigger frame than the slots hold) all are, so they can be re-made."""
        if self._blocks and image.nbytes <= self._blocks[0].size:
            return bool(self._free)
        return len(self._free) == len(self._blocks)

    def store(self, image: np.ndarray) -> SlotRef:
        if not self._blocks or image.nbytes > self._blocks[0].size:
            self._allocate(image.nbytes)
        index = self._free.popleft()
        block = self._blocks[index]
        np.copyto(np.ndarray(image.shape, dtype=np.uint8, buffer=block.buf), image)
        return SlotRef(index, block.name, image.shape)

    def release(self, index: int) -> None:
        self._free.append(index)

    def close(self) -> None:
        for block in self._blocks:
            block.close()
            block.unlink()
        self._blocks = []
        self._free.clear()

    def _allocate(self, size: int) -> None:
        # A camera that comes back with a larger resolution: workers re-map by name (see SlotViews).
        self.close()
        self._blocks = [SharedMemory(create=True, size=size) for _ in range(self._count)]
        self._free.extend(range(self._count))


class SlotViews:
    """A worker's side: slots mapped once and re-mapped only when the main process re-made them."""

    def __init__(self) -> None:
        self._mapped: dict[int, SharedMemory] = {}

    def view(self, slot: SlotRef) -> np.ndarray:
        block = self._mapped.get(slot.index)
        if block is None or block.name != slot.name:
            if block is not None:
                block.close()
            block = self._mapped[slot.index] = SharedMemory(name=slot.name)
        return np.ndarray(slot.shape, dtype=np.uint8, buffer=block.buf)

    def close(self) -> None:
        for block in self._mapped.values():
            block.close()
        self._mapped.clear()
