"""vap_runner.slots: the shared-memory frame slots and their budget."""

from __future__ import annotations

import os
from pathlib import Path

from vap_runner.slots import FrameSlots, SlotViews, shared_memory_budget


def test_frame_slots_are_shared_with_workers_handed_out_once_and_remade_for_bigger_frames() -> None:
    slots, workers_side = FrameSlots(2), SlotViews()
    try:
        small = (4, 6, 3)
        first, second = slots.acquire(small), slots.acquire(small)
        assert first is not None and second is not None and first.position != second.position
        assert slots.acquire(small) is None, "two slots, both in use"
        slots.view(first)[...] = 7  # what the reader's decoder writes...
        assert workers_side.view(first).shape == small and (workers_side.view(first) == 7).all()  # ...a worker sees
        bigger = (8, 6, 3)
        assert slots.acquire(bigger) is None, "bigger slots are made only when no frame is in flight"
        slots.release(first)
        assert slots.acquire(bigger) is None
        slots.release(second)
        remade = slots.acquire(bigger)
        assert remade is not None and remade.name not in {first.name, second.name}
        slots.view(remade)[...] = 9
        assert (workers_side.view(remade) == 9).all(), "a worker re-maps a slot that was re-made"
        slots.release(first)  # a slot of the old size released late changes nothing
        assert slots.acquire(small) is not None and slots.acquire(small) is None
    finally:
        workers_side.close()
        slots.close()


def test_frame_slots_are_made_as_frames_need_them_within_their_memory_budget() -> None:
    frame = (10, 10, 3)  # 300 bytes
    slots = FrameSlots(8, max_bytes=1000)
    try:
        first = slots.acquire(frame)
        assert first is not None
        slots.release(first)
        again = slots.acquire(frame)
        assert again == first, "the slot released last is handed out again before another is made"
        held = [again, slots.acquire(frame), slots.acquire(frame)]
        assert all(held) and slots.acquire(frame) is None, "a fourth 300-byte slot would exceed 1000 bytes"
        assert len({slot.name for slot in held if slot}) == 3
        huge = FrameSlots(8, max_bytes=10)
        assert huge.acquire(frame) is not None and huge.acquire(frame) is None, "one slot, whatever the budget"
        huge.close()
    finally:
        slots.close()


def test_the_shared_memory_budget_leaves_room_in_a_small_dev_shm(tmp_path: Path) -> None:
    stats = os.statvfs(tmp_path)
    free = stats.f_bavail * stats.f_frsize
    assert shared_memory_budget(1024, directory=str(tmp_path)) == 1024
    assert shared_memory_budget(free * 2, directory=str(tmp_path)) == free * 3 // 4
    assert shared_memory_budget(1024, directory=str(tmp_path / "missing")) == 1024
