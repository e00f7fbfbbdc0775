"""The whole platform end to end with the local runtime: POST init → relay → Kafka → orchestrator →
runner process → Kafka → inbox → GET prediction, and shutdown, on a sample file and an RTSP camera."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from dev.platform_stack import PlatformStack, RtspCamera
from tests.e2e.e2e_support import (
    CAR_SAMPLED,
    CAR_URL,
    Api,
    ResultsTopic,
    check_stored_equals_published,
    runner_pids,
    worker_row,
)
from tests.helpers import wait_until


def test_file_scenario_runs_to_its_end_and_every_sampled_frame_is_stored_once(
    platform: PlatformStack, api: Api, db_engine: Engine, results_topic: ResultsTopic, sample_video: Path
) -> None:
    # The mock detector sleeps up to 200 ms a frame (100 ms on average): ~8 s of analysis, long enough to see `active`.
    scenario = api.init(CAR_URL, settings={"delay_ms": 200}, name="file e2e")
    api.wait_status(scenario, "active", timeout_seconds=60)

    # A client polling with after_frame = the last frame it saw gets every frame once, in order.
    seen: list[dict[str, Any]] = []

    def poll_until_inactive() -> bool:
        status = api.status(scenario)  # read before the page: once inactive, that page is the last one needed
        after = seen[-1]["frame_number"] if seen else -1
        seen.extend(api.frames(scenario, after_frame=after, page_size=10))
        return status == "inactive" and [frame["frame_number"] for frame in seen] == CAR_SAMPLED

    wait_until(
        poll_until_inactive,
        timeout_seconds=90,
        what=f"the end of the file and all {len(CAR_SAMPLED)} sampled frames through after_frame paging",
    )
    numbers = [frame["frame_number"] for frame in seen]
    assert numbers == CAR_SAMPLED, f"frames seen while polling: {numbers}"
    assert all(isinstance(frame["detections"], list) and frame["timestamp"] for frame in seen)
    assert any(frame["detections"] for frame in seen), "the mock detector found nothing in 76 frames"
    detection = next(d for frame in seen for d in frame["detections"])
    assert set(detection) == {"class", "confidence", "bbox"} and len(detection["bbox"]) == 4

    # One page with everything, as the API stores it: the sampled frames exactly, in order, each once.
    assert [f["frame_number"] for f in api.prediction_page(scenario, limit=1000)["results"]] == CAR_SAMPLED
    runs = check_stored_equals_published(db_engine, results_topic, scenario)
    assert list(runs.values()) == [CAR_SAMPLED], f"expected one run analysing the sampled frames: {runs}"

    body = api.scenario(scenario)
    assert (body["status"], body["error_reason"]) == ("inactive", None)
    wait_until(
        lambda: not runner_pids(scenario), timeout_seconds=15, what="the runner and its inference process to exit"
    )
    # The runtime records the exit on its next step (it reaps the runner, then writes the row).
    wait_until(
        lambda: worker_row(db_engine, scenario)["status"] == "inactive",
        timeout_seconds=10,
        what="the workers row to say inactive",
    )
    row = worker_row(db_engine, scenario)
    assert (row["status"], row["process_pid"], row["restart_count"]) == ("inactive", None, 0)


def test_shutdown_of_a_running_file_scenario_stops_its_runner(
    platform: PlatformStack, api: Api, db_engine: Engine, results_topic: ResultsTopic, sample_video: Path
) -> None:
    # Up to 2 s a frame (1 s on average): the file would last over a minute; it is stopped long before.
    scenario = api.init(CAR_URL, settings={"delay_ms": 2000})
    api.wait_status(scenario, "active", timeout_seconds=60)
    wait_until(lambda: len(api.frame_numbers(scenario)) >= 3, timeout_seconds=30, what="3 stored frames")
    pids = runner_pids(scenario)
    assert pids, "no runner process carries the scenario's VAP_SCENARIO_UUID"
    assert worker_row(db_engine, scenario)["process_pid"] in pids

    answer = api.shutdown(scenario)
    assert answer["status"] == "init_shutdown"
    api.wait_status(scenario, "inactive", timeout_seconds=30)
    wait_until(
        lambda: not runner_pids(scenario), timeout_seconds=15, what="the runner and its inference process to exit"
    )
    row = worker_row(db_engine, scenario)
    assert (row["status"], row["desired_state"], row["process_pid"]) == ("inactive", "inactive", None)

    # Drained, not cut: what the runner published before it exited is stored, once; the file was not finished.
    runs = check_stored_equals_published(db_engine, results_topic, scenario)
    [frames] = runs.values()
    assert frames == CAR_SAMPLED[: len(frames)] and len(frames) < len(CAR_SAMPLED), frames
    assert api.frame_numbers(scenario) == frames
    # A second shutdown of an inactive scenario is a no-op.
    assert api.shutdown(scenario)["status"] == "inactive"


def test_rtsp_scenario_active_results_shutdown_inactive(
    platform: PlatformStack, api: Api, db_engine: Engine, results_topic: ResultsTopic, rtsp_camera: RtspCamera
) -> None:
    scenario = api.init(rtsp_camera.url, name="rtsp e2e")
    api.wait_status(scenario, "active", timeout_seconds=60)
    # A live stream is sampled on the wall clock (2.5 frames/s): 8 frames is about 3 s of video.
    wait_until(
        lambda: len(api.frame_numbers(scenario)) >= 8, timeout_seconds=30, what="8 stored frames of the RTSP stream"
    )

    api.shutdown(scenario)
    api.wait_status(scenario, "inactive", timeout_seconds=30)
    wait_until(
        lambda: not runner_pids(scenario), timeout_seconds=15, what="the runner and its inference process to exit"
    )

    runs = check_stored_equals_published(db_engine, results_topic, scenario)
    [frames] = runs.values()
    assert len(frames) >= 8
    assert api.frame_numbers(scenario) == frames  # each analysed frame once, in frame order
    assert worker_row(db_engine, scenario)["restart_count"] == 0
