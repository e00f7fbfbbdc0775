"""The publisher when Kafka cannot take results (a real librdkafka producer, pointed at a port nobody
listens on; the publisher's clock is the test's): an outage is ridden out up to its limit, status
events are never dropped, and what is never delivered is counted, never lost silently."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from vap_common.contracts import FrameResult, encode
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.settings import KafkaSettings
from vap_runner.metrics import RunnerMetrics
from vap_runner.publisher import DownstreamBlocked, ResultPublisher

SCENARIO = uuid.uuid4()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def result(frame_number: int) -> bytes:
    return encode(
        FrameResult(
            scenario_uuid=SCENARIO, run_id="r1", frame_number=frame_number, detections=[], timestamp=datetime.now(UTC)
        )
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics() -> RunnerMetrics:
    return RunnerMetrics()


@pytest.fixture
def make_publisher(clock: Clock, metrics: RunnerMetrics) -> Iterator[Callable[..., ResultPublisher]]:
    made: list[ResultPublisher] = []

    def make(
        *, budget_bytes: int = 2**20, outage_after_seconds: float = 5, outage_limit_seconds: float = 60
    ) -> ResultPublisher:
        publisher = ResultPublisher(
            kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),  # nobody listens
            scenario_uuid=SCENARIO,
            run_id="r1",
            outage_after_seconds=outage_after_seconds,
            outage_limit_seconds=outage_limit_seconds,
            budget_bytes=budget_bytes,
            linger_ms=5,
            metrics=metrics,
            on_wait=lambda: None,
            clock=clock,
        )
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close()


def test_kafka_away_is_an_outage_and_downstream_blocked_only_after_the_outage_limit(
    make_publisher: Callable[..., ResultPublisher], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = make_publisher(outage_after_seconds=5, outage_limit_seconds=60)
    publisher.publish_result(0, result(0))
    # librdkafka never gives up on it: the old message.timeout.ms of 0.5 s failed this within 0.5 s.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        publisher.poll()
        time.sleep(0.05)
    clock.now += 10
    with caplog.at_level(logging.WARNING, logger="vap_runner.publisher"):
        publisher.poll()
    assert [record.message for record in caplog.records if record.name == "vap_runner.publisher"] == [
        "Kafka outage: no result acknowledged; holding results"
    ]
    publisher.publish_result(1, result(1))
    clock.now += 49
    publisher.poll()
    clock.now += 2
    with pytest.raises(
        DownstreamBlocked, match=r"acknowledged no result for 61 s \(outage limit 60 s\); 2 results wait"
    ):
        publisher.poll()


def test_a_live_stream_over_budget_drops_oldest_results_but_never_a_status_event(
    make_publisher: Callable[..., ResultPublisher], metrics: RunnerMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = make_publisher(budget_bytes=20_000)
    publisher.live = True
    for number in range(500):
        publisher.publish_result(number, result(number))
        publisher.poll()
    budget_drops = metrics.registry.get_sample_value("vap_runner_results_dropped_total", {"cause": "budget"})
    undelivered = metrics.registry.get_sample_value("vap_runner_results_undelivered")
    assert budget_drops and undelivered and budget_drops + undelivered == 500
    assert (metrics.registry.get_sample_value("vap_runner_results_undelivered_bytes") or 0) <= 20_000

    publisher.send_status(ScenarioStatus.ACTIVE)  # past the full budget: queued, not refused
    assert not publisher.publish_status(
        ScenarioStatus.FAILED, reason=FailureReason.DOWNSTREAM_BLOCKED, message="x", timeout_seconds=0.3
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vap_runner.publisher"):
        assert publisher.close() == undelivered
    assert metrics.results_dropped_total() == 500
    records = [record for record in caplog.records if record.name == "vap_runner.publisher"]
    [report] = [record for record in records if record.message.startswith("results dropped")]
    [exit_line] = [record for record in records if hasattr(record, "status_events_dropped")]
    assert report.message.startswith("results dropped") and report.results_dropped == budget_drops  # type: ignore[attr-defined]
    # One contiguous run of the oldest: after those the producer took first, before the newest held.
    first, last = report.first_frame, report.last_frame  # type: ignore[attr-defined]
    assert last - first + 1 == budget_drops and first + (499 - last) == undelivered
    assert exit_line.results_dropped == undelivered and exit_line.status_events_dropped == 1  # type: ignore[attr-defined]


def test_a_file_pauses_at_the_budget_and_drops_nothing(
    make_publisher: Callable[..., ResultPublisher], metrics: RunnerMetrics
) -> None:
    publisher = make_publisher(budget_bytes=20_000)
    publisher.live = False
    number = 0
    while publisher.has_room():
        publisher.publish_result(number, result(number))
        publisher.poll()
        number += 1
    assert 20 < number < 200
    assert metrics.registry.get_sample_value("vap_runner_results_dropped_total", {"cause": "budget"}) == 0
    assert metrics.registry.get_sample_value("vap_runner_results_undelivered") == number
