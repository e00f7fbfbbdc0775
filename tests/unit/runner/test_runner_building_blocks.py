"""The runner's small pieces: sampling, backoff, frame order, source URLs, frame handoff, frame slots, settings."""

from __future__ import annotations

import os
import random
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import cv2
import pytest

from tests.conftest import MEDIA
from vap_common.contracts import DeployCommand, DetectorSpec
from vap_common.runner_contract import runner_environment
from vap_common.settings import KafkaSettings
from vap_runner.backoff import Backoff
from vap_runner.cli import _overrides, _parser
from vap_runner.handoff import QUEUED_FILE_FRAMES, Frame, FrameHandoff, Wakeup
from vap_runner.ordering import FrameOrder
from vap_runner.sampling import FrameSampler
from vap_runner.settings import RunnerSettings
from vap_runner.slots import FrameSlots, SlotRef, SlotViews, shared_memory_budget
from vap_runner.sources import InvalidSource, open_source, parse_source


def test_sampling_a_10fps_file_at_2_5fps_keeps_every_4th_frame() -> None:
    sampler = FrameSampler(2.5)
    assert [number for number in range(20) if sampler.accept(number / 10)] == [0, 4, 8, 12, 16]


def test_sampling_at_uneven_ratio_keeps_the_average_rate() -> None:
    sampler = FrameSampler(5)
    kept = [number for number in range(125) if sampler.accept(number / 12.5)]  # 10 s of a 12.5 fps file
    assert len(kept) == 50 and kept[:5] == [0, 3, 5, 8, 10]


def test_sampling_restarts_its_schedule_after_a_jump() -> None:
    sampler = FrameSampler(1)
    assert [sampler.accept(t) for t in (0.0, 0.5, 30.0, 30.5, 31.0)] == [True, False, True, False, True]


def test_no_target_fps_keeps_every_frame() -> None:
    sampler = FrameSampler(None)
    assert all(sampler.accept(t / 1000) for t in range(100))


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter() -> None:
    backoff = Backoff(initial_seconds=1, max_seconds=30, jitter_ratio=0.5, rng=random.Random(7))
    delays = [backoff.delay_seconds(attempt) for attempt in range(1, 9)]
    ceilings = [1, 2, 4, 8, 16, 30, 30, 30]
    assert all(ceiling / 2 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True)), delays
    assert len(set(delays[5:])) == 3, "jitter spreads equal ceilings"
    assert backoff.delay_seconds(10_000) <= 30


def test_frame_order_releases_results_in_submission_order_and_skips_abandoned_frames() -> None:
    order: FrameOrder[str] = FrameOrder()
    for number in (0, 4, 8, 12):
        order.expect(number)
    order.complete(8, "c")
    assert order.ready() == []
    order.complete(4, "b")
    order.abandon(0)
    assert order.ready() == [(4, "b"), (8, "c")]
    assert len(order) == 1
    order.complete(12, "d")
    assert order.ready() == [(12, "d")] and len(order) == 0


@pytest.mark.parametrize(
    ("url", "target", "local_file"),
    [
        ("rtsp://user:secret@cam.example:554/stream", "rtsp://user:secret@cam.example:554/stream", False),
        ("https://cam.example/mjpeg?token=abc", "https://cam.example/mjpeg?token=abc", False),
        ("file:///data/my%20clip.mp4", "/data/my clip.mp4", True),
        ("/data/clip.mp4", "/data/clip.mp4", True),
        ("RTSP://cam.example/stream", "rtsp://cam.example/stream", False),
    ],
)
def test_supported_camera_urls(url: str, target: str, local_file: bool) -> None:
    source = parse_source(url, allow_files=True)
    assert (source.target, source.local_file) == (target, local_file)
    assert "secret" not in source.safe_name and "abc" not in source.safe_name


@pytest.mark.parametrize(
    "url",
    [
        "concat:/etc/passwd|/etc/hosts",
        "udp://0.0.0.0:1234",
        "pipe:0",
        "rtsp:///nohost",
        "subfile:,,start,0,end,0,,:/etc/passwd",
    ],
)
def test_other_ffmpeg_protocols_are_refused(url: str) -> None:
    with pytest.raises(InvalidSource):
        parse_source(url, allow_files=True)


def test_local_files_can_be_disabled() -> None:
    with pytest.raises(InvalidSource, match="disabled"):
        parse_source("/data/clip.mp4", allow_files=False)


@pytest.mark.parametrize("decode_threads", [1, 3, 0])
def test_a_source_is_decoded_with_the_threads_asked_for(decode_threads: int) -> None:
    source = parse_source(str(MEDIA / "one-by-one-person-detection.mp4"), allow_files=True)
    opened = open_source(source, open_timeout_seconds=5, read_timeout_seconds=5, decode_threads=decode_threads)
    try:
        threads = opened.capture.get(cv2.CAP_PROP_N_THREADS)
        # 0 is FFmpeg's choice: one per core OpenCV sees.
        assert threads == decode_threads if decode_threads else threads >= 1
        assert opened.capture.read()[0]
    finally:
        opened.release()


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


def test_settings_read_exactly_what_the_runtime_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    command = DeployCommand(
        scenario_uuid=uuid.uuid4(),
        worker_id="w-1",
        action="deploy",
        camera_url="rtsp://cam/1",
        detector=DetectorSpec(name="hog_person", settings={"scale": 1.1}),
    )
    env = runner_environment(
        command,
        kafka=KafkaSettings(bootstrap_servers="kafka:9092", topic_prefix="p."),
        max_workers=3,
        grace_seconds=12.5,
        target_fps=2.5,
        http_port=9200,
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = RunnerSettings()
    assert (settings.scenario_uuid, settings.camera_url, settings.worker_id) == (
        command.scenario_uuid,
        "rtsp://cam/1",
        "w-1",
    )
    assert (settings.detector.name, settings.detector.settings) == ("hog_person", {"scale": 1.1})
    assert (settings.max_workers, settings.target_fps, settings.http_port, settings.grace_period_seconds) == (
        3,
        2.5,
        9200,
        12.5,
    )
    assert (settings.kafka.bootstrap_servers, settings.kafka.topic_prefix) == ("kafka:9092", "p.")

    # Flags override the environment; nested groups merge with it.
    args = _parser().parse_args(
        ["--max-workers", "1", "--detector-settings", '{"scale": 1.2}', "--kafka-topic-prefix", "q."]
    )
    overridden = RunnerSettings(**_overrides(args))
    assert (
        overridden.max_workers == 1
        and overridden.detector.name == "hog_person"
        and overridden.detector.settings == {"scale": 1.2}
    )
    assert (overridden.kafka.bootstrap_servers, overridden.kafka.topic_prefix) == ("kafka:9092", "q.")


@pytest.mark.parametrize(
    ("camera_url", "linger_ms"),
    [
        ("rtsp://cam.example/stream", 5),
        ("https://cam.example/mjpeg", 5),
        ("file:///videos/car.mp4", 100),
        ("/videos/car.mp4", 100),
    ],
)
def test_a_camera_sends_its_results_at_once_and_a_file_batches_them(camera_url: str, linger_ms: int) -> None:
    """A camera's few results a second would each wait a file's whole linger (capture -> stored latency)."""
    settings = RunnerSettings(scenario_uuid=uuid.uuid4(), camera_url=camera_url)
    assert settings.linger_ms(local_file=parse_source(camera_url, allow_files=True).local_file) == linger_ms
