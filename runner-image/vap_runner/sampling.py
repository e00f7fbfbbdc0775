"""Which frames to analyse for a target analysis rate."""

from __future__ import annotations

# Timestamps are floats built from frame counts: a frame exactly on its due time must not miss it.
_EPSILON_SECONDS = 1e-6


class FrameSampler:
    """Accepts at most ``target_fps`` frames per second of the timestamps it is shown.

    Due times advance by whole periods, so a 10 fps file sampled at 2.5 fps gives every 4th frame; when
    the timestamps jump ahead (a live stream after a stall) the schedule restarts from the new time.
    """

    def __init__(self, target_fps: float | None) -> None:
        self._period_seconds = 1.0 / target_fps if target_fps else 0.0
        self._next_due_seconds: float | None = None

    def accept(self, timestamp_seconds: float) -> bool:
        if not self._period_seconds:
            return True
        due = self._next_due_seconds
        if due is not None and timestamp_seconds < due - _EPSILON_SECONDS:
            return False
        behind = due is None or timestamp_seconds - due >= self._period_seconds
        self._next_due_seconds = (timestamp_seconds if behind else due) + self._period_seconds  # type: ignore[operator]
        return True
