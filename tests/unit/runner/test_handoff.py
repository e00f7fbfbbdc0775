"""vap_runner.handoff: frames passed from the reader to the inference processes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from vap_runner.handoff import QUEUED_FILE_FRAMES, Frame, FrameHandoff, Wakeup
from vap_runner.slots import SlotRef


def _frame(number: int) -> Frame:
    return Frame(
        number=number,
        slot=SlotRef(position=number, name=f"slot-{number}", shape=(2, 2, 3)),
        captured_at=datetime.now(UTC),
    )


def test_live_handoff_keeps_the_newest_frame_and_counts_drops() -> None:
    drops: list[int] = []
    wakeup = Wakeup()
    handoff = FrameHandoff(wakeup=wakeup, on_drop=lambda frame: drops.append(frame.number))
    handoff.keep_latest = True
    for number in range(3):
        assert handoff.put(_frame(number))
    taken = handoff.take()
    assert taken is not None and taken.number == 2 and drops == [0, 1] and handoff.take() is None
    wakeup.close()


def test_file_handoff_queues_frames_then_waits_until_one_is_taken_and_close_releases_the_writer() -> None:
    wakeup = Wakeup()
    handoff = FrameHandoff(wakeup=wakeup, on_drop=lambda _: pytest.fail("a file frame was dropped"))
    for number in range(QUEUED_FILE_FRAMES):
        assert handoff.put(_frame(number))
    results: list[bool] = []
    writer = threading.Thread(target=lambda: results.append(handoff.put(_frame(QUEUED_FILE_FRAMES))))
    writer.start()
    writer.join(0.2)
    assert writer.is_alive(), "a frame waits while the queue is full"
    taken = handoff.take()
    writer.join(2)
    assert taken is not None and taken.number == 0 and results == [True]
    blocked = threading.Thread(target=lambda: results.append(handoff.put(_frame(99))))
    blocked.start()
    handoff.close()
    blocked.join(2)
    assert results == [True, False] and handoff.take() is None
    wakeup.close()
