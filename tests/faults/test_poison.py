"""Poison on every topic, produced straight onto the private broker: values the contracts or the
database refuse for good, and messages about scenarios that do not exist or ended long ago. Each goes
to ``<topic>.dlq`` with why in its ``dlq.error`` header, nothing of it is stored or applied, and the
platform keeps working: a scenario running meanwhile and one registered after the poison both run to
their end with every result stored and served once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.e2e.e2e_support import CAR_URL
from tests.faults.conftest import PlatformFactory, Report
from tests.faults.harness import POISON_RUN_PREFIX, count, db_now, headers_of, read_topic, wait_all_final, wait_stored
from tests.helpers import wait_until
from vap_common.kafka import make_producer
from vap_common.topics import Topic, dlq_name, topic_name

SLOW = {"delay_ms": 400}
LATE_RESULT_GRACE_SECONDS = 2
# Past librdkafka's default message.max.bytes (1,000,000), which the platform's producers keep.
BIG_RESULT_BYTES = 1_160_000


@dataclass(frozen=True)
class Poison:
    name: str
    topic: Topic
    scenario_uuid: uuid.UUID
    value: bytes
    expected_error: str  # a part of the dlq.error header


def result_value(
    scenario: uuid.UUID, *, run: str, frame: int, detections: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "scenario_uuid": str(scenario),
        "run_id": f"{POISON_RUN_PREFIX}-{run}",
        "frame_number": frame,
        "detections": detections
        if detections is not None
        else [{"class": "car", "confidence": 0.9, "bbox": [1.0, 2.0, 30.0, 40.0]}],
        "timestamp": datetime.now(UTC).isoformat(),
    }


def event_value(scenario: uuid.UUID, captured_at: str, *, zone: str) -> dict[str, Any]:
    return {
        "scenario_uuid": str(scenario),
        "run_id": f"{POISON_RUN_PREFIX}-event",
        "sequence": 0,
        "type": "object_entered",
        "track_id": 1,
        "class": "car",
        "frame_number": 0,
        "captured_at": captured_at,
        "zone": zone,
    }


def big_result(scenario: uuid.UUID) -> bytes:
    """A result of BIG_RESULT_BYTES: far more detections than a frame may carry."""
    one = {"class": "person", "confidence": 0.5, "bbox": [1.5, 2.5, 3.5, 4.5]}
    size = len(json.dumps(one)) + 2
    value = json.dumps(
        result_value(scenario, run="big", frame=3, detections=[one] * (BIG_RESULT_BYTES // size))
    ).encode()
    assert len(value) >= BIG_RESULT_BYTES * 0.99, len(value)
    return value


def poisons(*, running: uuid.UUID, ended: uuid.UUID) -> list[Poison]:
    """Each aimed at a scenario it would harm if it got through: ``running`` runs now, ``ended`` ended
    longer than the inbox's late-result grace ago."""
    nobody = uuid.uuid4()
    now = datetime.now(UTC).isoformat()
    return [
        Poison(
            "NUL in a camera URL (init_scenario)",
            Topic.INIT_SCENARIO,
            nobody,
            json.dumps(
                {
                    "scenario_uuid": str(nobody),
                    "command": "start",
                    "camera_url": "file:///media/car\x00.mp4",
                    "issued_at": now,
                }
            ).encode(),
            "pattern",
        ),
        Poison(
            "to_deploy for a scenario that does not exist",
            Topic.TO_DEPLOY,
            nobody,
            json.dumps(
                {
                    "scenario_uuid": str(nobody),
                    "worker_id": "w-nobody",
                    "action": "deploy",
                    "camera_url": CAR_URL,
                    "issued_at": now,
                }
            ).encode(),
            str(nobody),
        ),
        Poison(
            "NUL in a camera URL (to_deploy)",
            Topic.TO_DEPLOY,
            running,
            json.dumps(
                {
                    "scenario_uuid": str(running),
                    "worker_id": "w-nul",
                    "action": "deploy",
                    "camera_url": "file:///x\x00",
                    "issued_at": now,
                }
            ).encode(),
            "pattern",
        ),
        Poison(
            "NUL in a detection class (results)",
            Topic.RESULTS,
            running,
            json.dumps(
                result_value(
                    running,
                    run="nul",
                    frame=1,
                    detections=[{"class": "ca\x00r", "confidence": 0.9, "bbox": [1.0, 2.0, 3.0, 4.0]}],
                )
            ).encode(),
            "pattern",
        ),
        Poison(
            "frame_number 10**19 (results)",
            Topic.RESULTS,
            running,
            json.dumps(result_value(running, run="huge", frame=10**19)).encode(),
            "less than or equal",
        ),
        Poison(
            "a result of a scenario inactive for longer than the grace (results)",
            Topic.RESULTS,
            ended,
            json.dumps(result_value(ended, run="late", frame=0)).encode(),
            "ended more than",
        ),
        Poison(
            "NUL in a status message (scenario_status)",
            Topic.SCENARIO_STATUS,
            running,
            json.dumps(
                {
                    "scenario_uuid": str(running),
                    "status": "failed",
                    "reason": "DetectorError",
                    "message": "bad\x00",
                    "occurred_at": now,
                }
            ).encode(),
            "pattern",
        ),
        Poison(
            "NUL in a zone name (events)",
            Topic.EVENTS,
            running,
            json.dumps(event_value(running, now, zone="dock\x00")).encode(),
            "pattern",
        ),
        Poison(
            "an event of a scenario that does not exist (events)",
            Topic.EVENTS,
            nobody,
            json.dumps(event_value(nobody, now, zone="dock")).encode(),
            f"unknown scenario_uuid {nobody}",
        ),
    ]


def test_poison_on_every_topic_goes_to_its_dead_letter_topic_and_the_platform_goes_on(
    make_platform: PlatformFactory, report: Report
) -> None:
    run_poison_case(make_platform, report, "poison", lambda running, ended: poisons(running=running, ended=ended))


def test_result_larger_than_the_platform_producers_may_send_goes_to_the_dead_letter_topic(
    make_platform: PlatformFactory, report: Report
) -> None:
    """The broker takes it (compressed it is small); the inbox must dead-letter it like any poison."""
    run_poison_case(
        make_platform,
        report,
        "poison-oversized-result",
        lambda running, _ended: [
            Poison(
                f"a {BIG_RESULT_BYTES / 1e6:.2f} MB result (results)",
                Topic.RESULTS,
                running,
                big_result(running),
                "at most",
            )
        ],
    )


def run_poison_case(
    make_platform: PlatformFactory,
    report: Report,
    case: str,
    make_batch: Callable[[uuid.UUID, uuid.UUID], list[Poison]],
) -> None:
    """A scenario ended longer than the late-result grace ago, another running: the poison of
    ``make_batch(running, ended)``, then one more scenario; every poison dead-lettered once, every
    scenario run to its end."""
    platform = make_platform(VAP_INBOX__LATE_RESULT_GRACE_SECONDS=str(LATE_RESULT_GRACE_SECONDS))
    ended = platform.api.init(CAR_URL, name="ended before the poison")
    wait_all_final(
        platform.engine, [ended], datetime.now(UTC), timeout_seconds=120, check_alive=platform.supervised.check_alive
    )
    running = platform.api.init(CAR_URL, settings=SLOW, name="running through the poison")
    wait_stored(platform.engine, [running], at_least=3)
    time.sleep(LATE_RESULT_GRACE_SECONDS + 1)  # `ended` is past the grace now

    batch = make_batch(running, ended)
    producer = make_producer(platform.kafka, **{"message.max.bytes": 2 * BIG_RESULT_BYTES})
    for poison in batch:
        producer.produce(
            topic_name(poison.topic, platform.kafka.topic_prefix),
            key=str(poison.scenario_uuid).encode(),
            value=poison.value,
        )
    assert producer.flush(30) == 0, "the poison was not acknowledged by the broker"
    produced_at, produced_db = time.monotonic(), db_now(platform.engine)
    after = platform.api.init(CAR_URL, name="registered after the poison")

    expected: dict[str, list[Poison]] = {}
    for poison in batch:
        expected.setdefault(topic_name(poison.topic, platform.kafka.topic_prefix), []).append(poison)

    def dead_lettered() -> dict[str, int]:
        return {topic: len(read_topic(platform.kafka, dlq_name(topic))) for topic in expected}

    try:
        wait_until(
            lambda: all(found >= len(expected[topic]) for topic, found in dead_lettered().items()),
            timeout_seconds=60,
            what="every poison message on its dead-letter topic",
            interval_seconds=1,
        )
    except AssertionError:
        pass  # reported below, poison by poison
    dlq_seconds = time.monotonic() - produced_at
    final = wait_all_final(
        platform.engine, [running, after], produced_db, timeout_seconds=150, check_alive=platform.supervised.check_alive
    )

    found: dict[str, list[dict[str, str]]] = {
        topic: [headers_of(m) for m in read_topic(platform.kafka, dlq_name(topic))] for topic in expected
    }
    missing = []
    for topic, wanted in expected.items():
        errors = [headers.get("dlq.error", "") for headers in found[topic]]
        assert all(headers.get("dlq.original.topic") == topic for headers in found[topic]), found[topic]
        for poison in wanted:
            if not any(poison.expected_error in error for error in errors):
                missing.append(
                    f"{poison.name}: no record on {dlq_name(topic)} with an error about {poison.expected_error!r} "
                    f"(errors there: {errors})"
                )
    figures = count(platform, case, [ended, running, after])
    per_topic = ", ".join(
        f"{dlq_name(topic).removeprefix(platform.kafka.topic_prefix)} {len(found[topic])}/{len(wanted)}"
        for topic, wanted in expected.items()
    )
    figures.notes.append(
        f"dead-lettered (found/expected) {per_topic} within {dlq_seconds:.1f}s; "
        f"the scenarios final {final:.1f}s after the poison"
    )
    report(figures.line(f"{len(batch)} poison message(s) on {len(expected)} topic(s)"))
    assert not missing, "; ".join(missing)
    assert all(len(found[topic]) == len(wanted) for topic, wanted in expected.items()), (
        f"dead-letter records other than the poison: {found}"
    )
    figures.check()
