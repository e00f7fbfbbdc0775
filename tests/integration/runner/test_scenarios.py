"""The runner end to end: real sources (a file, a real RTSP server), real Kafka, real processes."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import cv2

from dev.platform_stack import RtspCamera
from tests.conftest import MEDIA, free_port
from tests.integration.runner.runner_test_support import RunnerProcess
from vap_common.contracts import FrameResult, StatusEvent
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.runner_contract import RunnerExit
from vap_runner.detectors import build_detector, validate_config

Start = Callable[..., RunnerProcess]
Readers = tuple[Callable[..., list[FrameResult]], Callable[..., list[StatusEvent]]]
CAR_VIDEO = MEDIA / "car-detection.mp4"  # 377 frames at 12.5 fps


def assert_one_run_in_order(results: list[FrameResult], scenario_uuid: uuid.UUID) -> list[int]:
    numbers = [result.frame_number for result in results]
    assert numbers == sorted(set(numbers)), f"results out of order or duplicated: {numbers}"
    assert {(result.scenario_uuid, result.run_id) for result in results} == {(scenario_uuid, results[0].run_id)}
    return numbers


def test_file_scenario_publishes_each_sampled_frame_once_in_order_then_end_of_stream(
    start_runner: Start, results_and_statuses: Readers
) -> None:
    results, statuses = results_and_statuses
    scenario = uuid.uuid4()
    # 12.5 fps sampled at 2.5 fps: every 5th frame, 0 to 375.
    runner = start_runner(str(CAR_VIDEO), scenario_uuid=scenario, target_fps=2.5, max_workers=2)
    assert runner.wait(timeout_seconds=60) == RunnerExit.DONE, runner.messages()

    published = results(until=lambda got: len(got) >= 76)
    assert assert_one_run_in_order(published, scenario) == list(range(0, 377, 5))
    assert published[1].timestamp - published[0].timestamp == (
        published[2].timestamp - published[1].timestamp
    )  # the file's clock
    capture = cv2.VideoCapture(str(CAR_VIDEO))
    first_frame = capture.read()[1]
    capture.release()
    assert published[0].detections == build_detector(validate_config("mock", {})).detect(first_frame)

    events = statuses(until=lambda got: len(got) >= 2)
    assert [(event.status, event.message) for event in events] == [
        (ScenarioStatus.ACTIVE, None),
        (ScenarioStatus.INACTIVE, "end of stream"),
    ]
    assert {event.scenario_uuid for event in events} == {scenario}


def test_rtsp_scenario_streams_from_a_real_rtsp_server(
    rtsp_camera: RtspCamera, start_runner: Start, results_and_statuses: Readers
) -> None:
    results, statuses = results_and_statuses
    scenario = uuid.uuid4()
    port = free_port()
    runner = start_runner(rtsp_camera.url, scenario_uuid=scenario, max_frames=30, max_workers=2, http_port=port)
    runner.wait_for_log("source open", timeout_seconds=20)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
        assert response.status == 200
    assert runner.wait(timeout_seconds=30) == RunnerExit.DONE, runner.messages()

    summary = runner.wait_for_log("stream finished", timeout_seconds=1)
    numbers = assert_one_run_in_order(results(until=lambda got: len(got) >= summary["frames_analysed"]), scenario)
    # Live: a frame that a newer one replaces before analysis is dropped (FFmpeg delivers a burst on
    # connect), never reordered; every frame read is either analysed or counted as dropped.
    assert len(numbers) == summary["frames_analysed"] >= 10 and numbers[-1] <= 29, numbers
    assert summary["frames_read"] == 30 and summary["frames_analysed"] + summary["frames_dropped"] == 30
    # A live stream never "ends": max_frames stops the runner without an end-of-stream status.
    assert [event.status for event in statuses(timeout_seconds=2)] == [ScenarioStatus.ACTIVE]


def test_rtsp_outage_reconnects_and_results_resume(
    rtsp_camera: RtspCamera, start_runner: Start, results_and_statuses: Readers
) -> None:
    results, statuses = results_and_statuses
    scenario = uuid.uuid4()
    runner = start_runner(
        rtsp_camera.url,
        scenario_uuid=scenario,
        read_timeout_seconds=3,
        reconnect_initial_delay_seconds=0.3,
        max_consecutive_failed_connects=30,
    )
    before = results(until=lambda got: len(got) >= 5, timeout_seconds=20)
    assert len(before) >= 5, runner.messages()

    rtsp_camera.stop()
    runner.wait_for_log("source lost; reconnecting", timeout_seconds=10)
    rtsp_camera.start()
    last_before_restart = results(timeout_seconds=1)[-1].frame_number
    resumed = results(until=lambda got: got[-1].frame_number >= last_before_restart + 5, timeout_seconds=30)
    assert resumed[-1].frame_number >= last_before_restart + 5, runner.messages()[-10:]

    runner.terminate()
    assert runner.wait(timeout_seconds=20) == RunnerExit.DONE
    assert_one_run_in_order(results(timeout_seconds=1), scenario)
    assert runner.messages().count("source open") >= 2
    assert [event.status for event in statuses(timeout_seconds=2)] == [ScenarioStatus.ACTIVE], (
        "an outage is not a status change"
    )


def test_camera_that_never_connects_fails_with_source_unreachable(
    start_runner: Start, results_and_statuses: Readers
) -> None:
    _, statuses = results_and_statuses
    scenario = uuid.uuid4()
    url = f"rtsp://admin:s3cret-pw@127.0.0.1:{free_port()}/cam"  # nothing listens there
    runner = start_runner(
        url,
        scenario_uuid=scenario,
        max_consecutive_failed_connects=3,
        reconnect_initial_delay_seconds=0.1,
        open_timeout_seconds=2,
    )
    assert runner.wait(timeout_seconds=30) == RunnerExit.FAILED, runner.messages()

    events = statuses(until=lambda got: len(got) >= 1)
    assert [(event.scenario_uuid, event.status, event.reason) for event in events] == [
        (scenario, ScenarioStatus.FAILED, FailureReason.SOURCE_UNREACHABLE)
    ]
    assert events[0].message and "3 failed connect(s)" in events[0].message and "s3cret-pw" not in events[0].message
    assert "s3cret-pw" not in runner.raw and "admin:***@127.0.0.1" in runner.raw
    assert not [line for line in runner.messages() if line.startswith("NOT JSON")], (
        "FFmpeg/OpenCV wrote past the JSON logging"
    )
    assert runner.messages().count("source lost; reconnecting") == 2


def test_invalid_detector_settings_fail_with_invalid_config(
    start_runner: Start, results_and_statuses: Readers, tmp_path: Path
) -> None:
    _, statuses = results_and_statuses
    termination_log = tmp_path / "termination-log"
    termination_log.touch()  # as Kubernetes mounts it
    runner = start_runner(
        str(CAR_VIDEO),
        detector__name="hog_person",
        detector__settings={"scale": 0.5},
        termination_log_path=str(termination_log),
    )
    assert runner.wait(timeout_seconds=30) == RunnerExit.FAILED
    [event] = statuses(until=lambda got: len(got) >= 1)
    assert (event.status, event.reason) == (ScenarioStatus.FAILED, FailureReason.INVALID_CONFIG)
    assert event.message and "scale" in event.message
    assert termination_log.read_text().startswith("InvalidConfig: ")


def test_a_detector_that_cannot_start_in_its_worker_fails_with_invalid_config(
    start_runner: Start, results_and_statuses: Readers, tmp_path: Path
) -> None:
    # Valid settings, but the model file is not a model: only the inference process finds out.
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not a model")
    _, statuses = results_and_statuses
    runner = start_runner(str(CAR_VIDEO), detector__name="onnx", detector__settings={"model_path": str(model)})
    assert runner.wait(timeout_seconds=60) == RunnerExit.FAILED, runner.messages()
    [event] = statuses(until=lambda got: len(got) >= 1)
    assert (event.status, event.reason) == (ScenarioStatus.FAILED, FailureReason.INVALID_CONFIG)
    assert event.message and "could not start" in event.message


def test_sigterm_publishes_every_frame_in_flight_and_no_status(
    start_runner: Start, results_and_statuses: Readers
) -> None:
    results, statuses = results_and_statuses
    scenario = uuid.uuid4()
    runner = start_runner(
        str(CAR_VIDEO),
        scenario_uuid=scenario,
        max_workers=2,
        detector__settings={"delay_ms": 200},
        grace_period_seconds=8,
    )
    assert len(results(until=lambda got: len(got) >= 3, timeout_seconds=20)) >= 3, runner.messages()
    runner.terminate()
    assert runner.wait(timeout_seconds=15) == RunnerExit.DONE, runner.messages()

    numbers = assert_one_run_in_order(results(timeout_seconds=2), scenario)
    # Frames are read in order and none in flight is lost: what was published is 0..n-1.
    assert numbers == list(range(len(numbers))) and len(numbers) < 377
    assert runner.wait_for_log("stopped on request", timeout_seconds=1)["frames_analysed"] == len(numbers)
    assert [event.status for event in statuses(timeout_seconds=2)] == [ScenarioStatus.ACTIVE]


def test_http_video_file_is_analysed_to_its_end(
    http_camera: str, start_runner: Start, results_and_statuses: Readers
) -> None:
    results, statuses = results_and_statuses
    scenario = uuid.uuid4()
    runner = start_runner(f"{http_camera}/car-detection.mp4", scenario_uuid=scenario, target_fps=1.25)
    assert runner.wait(timeout_seconds=60) == RunnerExit.DONE, runner.messages()
    assert assert_one_run_in_order(results(until=lambda got: len(got) >= 38), scenario) == list(range(0, 377, 10))
    assert [event.status for event in statuses(until=lambda got: len(got) >= 2)] == [
        ScenarioStatus.ACTIVE,
        ScenarioStatus.INACTIVE,
    ]


def test_http_mjpeg_stream_is_live(http_camera: str, start_runner: Start, results_and_statuses: Readers) -> None:
    results, statuses = results_and_statuses
    scenario = uuid.uuid4()
    runner = start_runner(f"{http_camera}/mjpeg", scenario_uuid=scenario, max_frames=15)
    assert runner.wait(timeout_seconds=30) == RunnerExit.DONE, runner.messages()
    assert runner.wait_for_log("source open", timeout_seconds=1)["live"] is True
    summary = runner.wait_for_log("stream finished", timeout_seconds=1)
    numbers = assert_one_run_in_order(results(until=lambda got: len(got) >= summary["frames_analysed"]), scenario)
    assert len(numbers) == summary["frames_analysed"] > 0 and summary["frames_read"] == 15
    assert [event.status for event in statuses(timeout_seconds=2)] == [ScenarioStatus.ACTIVE], (
        "a live stream has no end-of-stream status"
    )
