"""Runners ride out Kafka outages (issue 13): a private real broker (tests/faults/servers.py), killed
with SIGKILL and started again by the test, never the shared one.

The runners' old limit is scaled down (VAP_DOWNSTREAM_BLOCKED_TIMEOUT_SECONDS=3: before, a runner
failed with DownstreamBlocked after it, librdkafka's _MSG_TIMED_OUT having dropped what it held) and
every outage lasts several times longer: a live runner keeps analysing and delivers every result its
budget held, in order, once; over its budget it drops the oldest, counted exactly; a file pauses and
drops nothing; status events come through; SIGTERM mid-outage exits 0, counting what is lost.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dev.platform_stack import RtspCamera
from tests.conftest import MEDIA, free_port
from tests.faults.servers import KafkaBroker
from tests.helpers import wait_until
from tests.integration.runner.runner_test_support import RunnerProcess
from vap_common.contracts import FrameResult, StatusEvent
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.runner_contract import RunnerExit
from vap_common.settings import KafkaSettings

Start = Callable[..., RunnerProcess]
Readers = tuple[Callable[..., list[FrameResult]], Callable[..., list[StatusEvent]]]
CAR_VIDEO = MEDIA / "car-detection.mp4"  # 377 frames at 12.5 fps
OLD_TIMEOUT_SECONDS = 3  # VAP_DOWNSTREAM_BLOCKED_TIMEOUT_SECONDS: the runner failed after it before
OUTAGE_SECONDS = 4 * OLD_TIMEOUT_SECONDS  # from the kill to the restart (the broker then takes a few s to serve)
TINY_BUDGET_MIB = 0.02  # ~20 KB: ~40 results of the person video


@pytest.fixture(autouse=True)
def fault_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """A runner that crashes in native code (librdkafka, OpenCV) prints its Python stacks to its log."""
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One broker for the module (a JVM start is ~10 s on 2 cores); each test has its own topics."""
    for _attempt in range(3):
        broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
        try:
            broker.start()
            break
        except subprocess.CalledProcessError:
            # `kafka-storage format -t <id>` takes an id starting with "-" (1 in 64 random ids) for an
            # option and fails (tests/faults/servers.py): format again, with another id.
            continue
    try:
        broker.wait_ready()
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def kafka_settings(private_broker: KafkaBroker) -> KafkaSettings:
    """Overrides the shared stack's: this module's runners and readers use the private broker."""
    if private_broker.process is None:  # a test that failed mid-outage
        private_broker.start()
        private_broker.wait_ready()
    prefix = f"o{uuid.uuid4().hex[:8]}."
    private_broker.create_topics(prefix)
    return private_broker.settings(prefix)


def kill_for(broker: KafkaBroker, seconds: float, *, during: Callable[[], None] = lambda: None) -> float:
    """Kill the broker, run ``during``, start it again ``seconds`` after the kill; the outage's length
    until it serves again."""
    killed = time.monotonic()
    broker.kill()
    during()
    time.sleep(max(0.0, seconds - (time.monotonic() - killed)))
    broker.start()
    broker.wait_ready()
    return time.monotonic() - killed


def metrics(port: int) -> dict[str, float]:
    """The runner's /metrics samples: name{label="value"} -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def assert_one_run_in_order(results: list[FrameResult], scenario_uuid: uuid.UUID) -> list[int]:
    numbers = [result.frame_number for result in results]
    assert numbers == sorted(set(numbers)), f"results out of order or duplicated: {numbers}"
    assert {(result.scenario_uuid, result.run_id) for result in results} == {(scenario_uuid, results[0].run_id)}
    return numbers


def stop(runner: RunnerProcess) -> dict[str, Any]:
    runner.terminate()
    code = runner.wait(timeout_seconds=30)
    assert code == RunnerExit.DONE, "\n".join(message for message in runner.messages()[-60:])
    return runner.wait_for_log("stopped on request", timeout_seconds=1)


def test_live_runner_keeps_analysing_through_an_outage_and_delivers_every_result_once_in_order(
    private_broker: KafkaBroker, rtsp_camera: RtspCamera, start_runner: Start, results_and_statuses: Readers
) -> None:
    results, statuses = results_and_statuses
    scenario, port = uuid.uuid4(), free_port()
    runner = start_runner(
        rtsp_camera.url, scenario_uuid=scenario, http_port=port, downstream_blocked_timeout_seconds=OLD_TIMEOUT_SECONDS
    )
    assert len(results(until=lambda got: len(got) >= 5, timeout_seconds=30)) >= 5, runner.messages()
    during: dict[str, float] = {}

    def watch() -> None:
        runner.wait_for_log("Kafka outage: no result acknowledged; holding results", timeout_seconds=OUTAGE_SECONDS)
        time.sleep(OLD_TIMEOUT_SECONDS)
        during.update(metrics(port))

    outage = kill_for(private_broker, OUTAGE_SECONDS, during=watch)
    assert during["vap_runner_results_undelivered"] >= 10 * OLD_TIMEOUT_SECONDS, during  # 10 fps: analysis went on
    runner.wait_for_log("Kafka acknowledges results again", timeout_seconds=60)
    summary = stop(runner)

    analysed = summary["frames_analysed"]
    assert (summary["results_acknowledged"], summary["results_dropped"]) == (analysed, 0), summary
    numbers = assert_one_run_in_order(results(until=lambda got: len(got) >= analysed, timeout_seconds=30), scenario)
    assert len(numbers) == analysed
    assert [event.status for event in statuses(timeout_seconds=2)] == [ScenarioStatus.ACTIVE], (
        "no failed, no drop report"
    )
    print(
        f"live outage: broker away {outage:.1f} s (old limit {OLD_TIMEOUT_SECONDS} s); "
        f"{int(during['vap_runner_results_undelivered'])} results "
        f"held ({int(during['vap_runner_results_undelivered_bytes'])} B) {OLD_TIMEOUT_SECONDS} s into it; "
        f"{analysed} analysed, all delivered once in order"
    )


def test_live_runner_over_its_budget_drops_the_oldest_results_counted_exactly(
    private_broker: KafkaBroker, rtsp_camera: RtspCamera, start_runner: Start, results_and_statuses: Readers
) -> None:
    results, statuses = results_and_statuses
    scenario, port = uuid.uuid4(), free_port()
    runner = start_runner(
        rtsp_camera.url,
        scenario_uuid=scenario,
        http_port=port,
        undelivered_results_mib=TINY_BUDGET_MIB,
        downstream_blocked_timeout_seconds=OLD_TIMEOUT_SECONDS,
    )
    results(until=lambda got: len(got) >= 5, timeout_seconds=30)

    def until_dropping() -> None:
        wait_until(
            lambda: metrics(port).get('vap_runner_results_dropped_total{cause="budget"}', 0) >= 20,
            timeout_seconds=OUTAGE_SECONDS * 2,
            what="drops",
        )
        during = metrics(port)
        assert during["vap_runner_results_undelivered_bytes"] <= TINY_BUDGET_MIB * 2**20, during

    outage = kill_for(private_broker, OUTAGE_SECONDS, during=until_dropping)
    report = runner.wait_for_log(
        "results dropped: Kafka took none while the undelivered-results budget was full", timeout_seconds=60
    )
    summary = stop(runner)

    analysed, acknowledged, dropped = (
        summary["frames_analysed"],
        summary["results_acknowledged"],
        summary["results_dropped"],
    )
    assert isinstance(analysed, int) and isinstance(acknowledged, int) and isinstance(dropped, int)
    assert (
        acknowledged + dropped == analysed
        and dropped == report["results_dropped"] == report["results_dropped_total"] > 20
    ), (summary, report)
    delivered = results(until=lambda got: len(got) >= acknowledged, timeout_seconds=30)
    numbers = assert_one_run_in_order(delivered, scenario)
    assert len(numbers) == acknowledged
    # The dropped ones are the oldest that waited: one run of frames, with results delivered before it
    # (those librdkafka held) and after it (the newest, held within the budget until Kafka returned).
    first, last = report["first_frame"], report["last_frame"]
    assert isinstance(first, int) and isinstance(last, int)
    assert not [number for number in numbers if first <= number <= last], (first, last, numbers)
    before, after = [n for n in numbers if n < first], [n for n in numbers if n > last]
    assert before and len(after) >= 20, (first, last, numbers)
    # ... and the platform is told: an `active` event (the state does not change) saying what was lost.
    events = statuses(until=lambda got: len(got) >= 2, timeout_seconds=10)
    assert [event.status for event in events] == [ScenarioStatus.ACTIVE, ScenarioStatus.ACTIVE]
    assert events[1].message and events[1].message.startswith(
        f"results dropped: {dropped} (frames {first}-{last}), oldest first"
    )
    assert events[1].drops is not None and events[1].drops.model_dump() == {
        "run_id": delivered[0].run_id,
        "dropped": dropped,
        "first_frame": first,
        "last_frame": last,
    }, "the report the inbox stores for the API: the run's exact totals"
    print(
        f"tiny budget ({TINY_BUDGET_MIB} MiB): broker away {outage:.1f} s; "
        f"analysed {analysed} = published {acknowledged} + dropped {dropped} (frames {first}-{last})"
    )


def test_file_pauses_through_an_outage_and_delivers_every_sampled_frame(
    private_broker: KafkaBroker, start_runner: Start, results_and_statuses: Readers
) -> None:
    results, statuses = results_and_statuses
    scenario, port = uuid.uuid4(), free_port()
    runner = start_runner(
        str(CAR_VIDEO),
        scenario_uuid=scenario,
        http_port=port,
        detector__settings={"delay_ms": 100},  # ~20 s for the file: the outage comes mid-file
        undelivered_results_mib=TINY_BUDGET_MIB,
        downstream_blocked_timeout_seconds=OLD_TIMEOUT_SECONDS,
    )
    results(until=lambda got: len(got) >= 5, timeout_seconds=30)
    paused: dict[str, float] = {}

    def check_paused() -> None:
        runner.wait_for_log(
            "undelivered results fill their budget; reading paused until Kafka takes them",
            timeout_seconds=OUTAGE_SECONDS,
        )
        time.sleep(1)
        read_at_pause = metrics(port)["vap_runner_frames_read_total"]
        time.sleep(OLD_TIMEOUT_SECONDS)
        paused.update(metrics(port))
        assert paused["vap_runner_frames_read_total"] == read_at_pause, "the reader went on while paused"

    outage = kill_for(private_broker, OUTAGE_SECONDS, during=check_paused)
    assert runner.wait(timeout_seconds=90) == RunnerExit.DONE, runner.messages()[-10:]

    summary = runner.wait_for_log("stream finished", timeout_seconds=1)
    assert (summary["frames_analysed"], summary["results_acknowledged"], summary["results_dropped"]) == (377, 377, 0), (
        summary
    )
    assert runner.messages().count("results delivered again; reading on") >= 1
    assert assert_one_run_in_order(results(until=lambda got: len(got) >= 377, timeout_seconds=30), scenario) == list(
        range(377)
    )
    events = statuses(until=lambda got: len(got) >= 2, timeout_seconds=10)
    assert [(event.status, event.message) for event in events] == [
        (ScenarioStatus.ACTIVE, None),
        (ScenarioStatus.INACTIVE, "end of stream"),
    ]
    print(
        f"file outage: broker away {outage:.1f} s; "
        f"paused at {int(paused['vap_runner_frames_read_total'])} frames read with "
        f"{int(paused['vap_runner_results_undelivered'])} results held; "
        "then all 377 delivered once in order, `inactive`"
    )


def test_status_events_queued_during_an_outage_are_delivered_after_it(
    private_broker: KafkaBroker, rtsp_camera: RtspCamera, start_runner: Start, results_and_statuses: Readers
) -> None:
    results, statuses = results_and_statuses
    scenario = uuid.uuid4()
    runner: list[RunnerProcess] = []

    def start_during_the_outage() -> None:  # e.g. restarted by its runtime meanwhile
        runner.append(
            start_runner(
                rtsp_camera.url, scenario_uuid=scenario, downstream_blocked_timeout_seconds=OLD_TIMEOUT_SECONDS
            )
        )
        runner[0].wait_for_log(
            "Kafka outage: no result acknowledged; holding results", timeout_seconds=OUTAGE_SECONDS + 20
        )

    outage = kill_for(private_broker, OUTAGE_SECONDS, during=start_during_the_outage)
    events = statuses(until=lambda got: len(got) >= 1, timeout_seconds=60)
    assert [(event.scenario_uuid, event.status) for event in events] == [(scenario, ScenarioStatus.ACTIVE)], runner[
        0
    ].messages()[-10:]
    runner[0].wait_for_log("Kafka acknowledges results again", timeout_seconds=30)
    summary = stop(runner[0])
    assert summary["results_acknowledged"] == summary["frames_analysed"] and summary["results_dropped"] == 0, summary
    numbers = assert_one_run_in_order(
        results(until=lambda got: len(got) >= summary["frames_analysed"], timeout_seconds=30), scenario
    )
    assert len(numbers) == summary["frames_analysed"]
    print(f"started during a {outage:.1f} s outage: `active` and all {len(numbers)} results delivered after it")


def test_sigterm_during_an_outage_exits_0_within_its_grace_and_counts_what_it_drops(
    private_broker: KafkaBroker, rtsp_camera: RtspCamera, start_runner: Start, results_and_statuses: Readers
) -> None:
    results, _ = results_and_statuses
    scenario = uuid.uuid4()
    grace_seconds = 4
    runner = start_runner(
        rtsp_camera.url,
        scenario_uuid=scenario,
        grace_period_seconds=grace_seconds,
        downstream_blocked_timeout_seconds=OLD_TIMEOUT_SECONDS,
    )
    results(until=lambda got: len(got) >= 5, timeout_seconds=30)
    before = len(results(timeout_seconds=1))
    private_broker.kill()
    try:
        runner.wait_for_log("Kafka outage: no result acknowledged; holding results", timeout_seconds=OUTAGE_SECONDS)
        asked = time.monotonic()
        summary = stop(runner)
        took = time.monotonic() - asked
        lost = runner.wait_for_log("Kafka did not acknowledge every message before exit; dropped", timeout_seconds=1)
    finally:
        private_broker.start()
        private_broker.wait_ready()
    assert took < grace_seconds + 5, f"exit took {took:.1f} s"
    analysed, acknowledged, dropped = (
        summary["frames_analysed"],
        summary["results_acknowledged"],
        summary["results_dropped"],
    )
    assert isinstance(analysed, int) and isinstance(acknowledged, int)
    assert dropped == lost["results_dropped"] == analysed - acknowledged > 0, (summary, lost)
    published = assert_one_run_in_order(results(timeout_seconds=5), scenario)
    # What Kafka acknowledged is on the topic; a result in flight at the kill may be there unacknowledged too.
    assert before <= acknowledged <= len(published) <= acknowledged + 5, (before, acknowledged, len(published))
    print(
        f"SIGTERM mid-outage: exit 0 after {took:.1f} s (grace {grace_seconds} s); "
        f"{dropped} of {analysed} results counted dropped"
    )


def test_an_outage_past_its_limit_fails_with_downstream_blocked_once_the_broker_acknowledges_it(
    private_broker: KafkaBroker, rtsp_camera: RtspCamera, start_runner: Start, results_and_statuses: Readers
) -> None:
    _, statuses = results_and_statuses
    scenario = uuid.uuid4()
    limit_seconds = 2 * OLD_TIMEOUT_SECONDS
    runner = start_runner(
        rtsp_camera.url,
        scenario_uuid=scenario,
        downstream_blocked_timeout_seconds=OLD_TIMEOUT_SECONDS,
        downstream_outage_limit_seconds=limit_seconds,
    )
    statuses(until=lambda got: len(got) >= 1, timeout_seconds=30)
    private_broker.kill()
    killed = time.monotonic()
    try:
        failed = runner.wait_for_log("runner failed", timeout_seconds=limit_seconds + 20)
        failed_after = time.monotonic() - killed
    finally:
        private_broker.start()  # within the runner's wait for the `failed` event's acknowledgement
        private_broker.wait_ready()
    assert failed["reason"] == FailureReason.DOWNSTREAM_BLOCKED and "outage limit" in str(failed["error"]), failed
    # The limit runs from the last acknowledgement, a moment before the kill.
    assert limit_seconds - 1 <= failed_after < limit_seconds + 10, failed_after
    assert runner.wait(timeout_seconds=40) == RunnerExit.FAILED, runner.raw[-6000:]
    events = statuses(until=lambda got: len(got) >= 2, timeout_seconds=20)
    assert [(event.status, event.reason) for event in events] == [
        (ScenarioStatus.ACTIVE, None),
        (ScenarioStatus.FAILED, FailureReason.DOWNSTREAM_BLOCKED),
    ]
