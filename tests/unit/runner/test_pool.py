"""The inference pool with real worker processes: frame order, crash recovery, hangs, no orphans."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import MEDIA
from vap_common.contracts import FrameResult, decode
from vap_common.lifecycle import FailureReason
from vap_runner import slots
from vap_runner.detectors import build_detector, validate_config
from vap_runner.handoff import Frame
from vap_runner.metrics import RunnerMetrics
from vap_runner.pool import Analysed, DetectorPool

CAR_VIDEO = str(MEDIA / "car-detection.mp4")
Frames = Callable[[str, set[int]], dict[int, np.ndarray]]


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}


SCENARIO, RUN = uuid.uuid4(), "run-1"


def make_pool(
    detector: str,
    *,
    size: int,
    metrics: RunnerMetrics,
    inference_timeout_seconds: float = 30,
    max_consecutive_failures: int = 5,
    **settings: object,
) -> DetectorPool:
    pool = DetectorPool(
        config=validate_config(detector, settings),
        size=size,
        scenario_uuid=SCENARIO,
        run_id=RUN,
        metrics=metrics,
        log_level="WARNING",
        inference_timeout_seconds=inference_timeout_seconds,
        max_consecutive_failures=max_consecutive_failures,
    )
    pool.start()
    return pool


def run_frames(
    pool: DetectorPool,
    images: dict[int, np.ndarray],
    *,
    timeout_seconds: float = 30,
    on_tick: Callable[[], None] = lambda: None,
) -> list[Analysed]:
    """Feed ``images`` as the runner's reader and main loop do (each in a slot of the pool, then submitted)
    and collect what comes out, in output order."""
    queue = sorted(images.items())
    out: list[Analysed] = []
    deadline = time.monotonic() + timeout_seconds
    while (queue or pool.pending) and pool.failure is None:
        assert time.monotonic() < deadline, f"pool stuck with {pool.pending} frames pending"
        while queue and pool.can_accept():
            number, image = queue.pop(0)
            slot = pool.slots.acquire(image.shape)
            assert slot is not None, "the pool has a slot for every frame it can accept"
            pool.slots.view(slot)[...] = image
            pool.submit(Frame(number=number, slot=slot, captured_at=datetime.now(UTC)))
        on_tick()
        pool.wait(timeout_seconds=0.1)
        out.extend(pool.analysed())
    return out


def test_results_come_out_in_frame_order_with_two_workers(media_frames: Frames) -> None:
    images = media_frames(CAR_VIDEO, set(range(0, 48, 4)))
    metrics = RunnerMetrics()
    # Each frame sleeps 0-150 ms depending on its content: the two workers finish out of order.
    pool = make_pool("mock", size=2, metrics=metrics, delay_ms=150)
    try:
        assert pool.wait_ready(timeout_seconds=30, stopping=lambda: False)
        out = run_frames(pool, images)
    finally:
        pool.close(timeout_seconds=5)
    reference = build_detector(validate_config("mock", {}))
    assert [item.frame_number for item in out] == sorted(images)
    for item in out:
        result = decode(FrameResult, item.message)
        assert (result.scenario_uuid, result.run_id, result.frame_number) == (SCENARIO, RUN, item.frame_number)
        assert result.detections == reference.detect(images[item.frame_number])
    assert metrics.registry.get_sample_value("vap_runner_inference_seconds_count") == len(images)


def test_a_killed_worker_is_replaced_and_its_frames_are_analysed_again(media_frames: Frames) -> None:
    images = media_frames(CAR_VIDEO, set(range(8)))
    metrics = RunnerMetrics()
    pool = make_pool("mock", size=2, metrics=metrics, delay_ms=400)
    killed: list[int] = []

    def kill_first_worker_once() -> None:
        if not killed and pool.pending >= 4:  # both workers hold frames
            killed.append(pool.pids[0])
            os.kill(killed[0], signal.SIGKILL)

    try:
        assert pool.wait_ready(timeout_seconds=30, stopping=lambda: False)
        out = run_frames(pool, images, on_tick=kill_first_worker_once)
        assert killed and killed[0] not in pool.pids and len(pool.pids) == 2
    finally:
        pool.close(timeout_seconds=5)
    assert [item.frame_number for item in out] == list(range(8)), "every frame, once, in order"
    assert metrics.total("inference_restarts") == 1 and metrics.total("frames_failed") == 0


def test_a_frame_that_hangs_twice_is_given_up_and_repeated_failures_fail_the_pool(media_frames: Frames) -> None:
    # HOG on a 4x upscaled frame takes far longer than the 50 ms allowed: every attempt hangs.
    big = cv2.resize(media_frames(CAR_VIDEO, {0})[0], None, fx=2, fy=2)
    metrics = RunnerMetrics()
    pool = make_pool("hog_person", size=1, metrics=metrics, inference_timeout_seconds=0.05, max_consecutive_failures=3)
    try:
        assert pool.wait_ready(timeout_seconds=30, stopping=lambda: False)
        out = run_frames(pool, {0: big, 1: big})
    finally:
        pool.close(timeout_seconds=5)
    assert out == []
    # Frame 0: killed, retried, killed again -> given up. Frame 1: killed once -> third failure in a row.
    assert metrics.total("frames_failed") == 1 and metrics.total("inference_restarts") == 3
    assert pool.failure is not None and pool.failure.reason is FailureReason.DETECTOR_ERROR
    assert "3 detector failures in a row" in pool.failure.message


def test_a_detector_that_cannot_start_is_a_config_failure(tmp_path: Path) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not a model")
    pool = make_pool("onnx", size=1, metrics=RunnerMetrics(), model_path=str(model))
    try:
        assert not pool.wait_ready(timeout_seconds=30, stopping=lambda: False)
    finally:
        pool.close(timeout_seconds=5)
    assert pool.failure is not None and pool.failure.reason is FailureReason.INVALID_CONFIG
    assert "could not start" in pool.failure.message


def test_close_leaves_no_worker_process_behind() -> None:
    pool = make_pool("mock", size=2, metrics=RunnerMetrics())
    assert pool.wait_ready(timeout_seconds=30, stopping=lambda: False)
    pids = pool.pids
    assert len(pids) == 2 and all(process_alive(pid) for pid in pids)
    pool.close(timeout_seconds=5)
    assert not any(process_alive(pid) for pid in pids)


@pytest.fixture(autouse=True)
def _no_leaked_shared_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every frame slot block the test's pool created is unlinked after it. The blocks are recorded as
    they are created: other test processes have blocks of their own in /dev/shm meanwhile."""
    created: list[str] = []

    class RecordedSharedMemory(SharedMemory):
        def __init__(self, name: str | None = None, create: bool = False, size: int = 0) -> None:
            super().__init__(name=name, create=create, size=size)
            if create:
                created.append(self.name)

    monkeypatch.setattr(slots, "SharedMemory", RecordedSharedMemory)
    yield
    assert not [name for name in created if Path("/dev/shm", name).exists()], "frame slots not unlinked"
