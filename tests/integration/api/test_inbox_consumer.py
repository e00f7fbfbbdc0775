"""The results/status inbox on real Kafka and PostgreSQL: in process, and as a real process killed with -9."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from functools import partial

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import consume, wait_until
from tests.integration.api.api_test_support import Process, add_scenario, encoded_frames, frame, produce, run_loop_until
from vap_api.inbox.consumer import RESULTS_DUPLICATE, STATUS_IGNORED, Inbox
from vap_common.consuming import ConsumerLoop
from vap_common.contracts import Detection, ResultDrops, StatusEvent, encode
from vap_common.kafka import make_consumer, make_producer
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, dlq_name, topic_name

S = ScenarioStatus


def _topics(settings: KafkaSettings) -> tuple[str, str]:
    return topic_name(Topic.RESULTS, settings.topic_prefix), topic_name(Topic.SCENARIO_STATUS, settings.topic_prefix)


def _stored(engine: Engine, scenario_uuid: uuid.UUID) -> list[tuple[str, int]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT run_id, frame_number FROM scenario_results WHERE scenario_uuid = :u "
                "ORDER BY run_id, frame_number"
            ),
            {"u": scenario_uuid},
        )
        return [(row.run_id, row.frame_number) for row in rows]


def _count(engine: Engine, scenario_uuid: uuid.UUID) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM scenario_results WHERE scenario_uuid = :u"), {"u": scenario_uuid}
            ).scalar_one()
        )


def _scenario(engine: Engine, scenario_uuid: uuid.UUID) -> tuple[str, str | None, str | None]:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT status, error_reason, error_message FROM scenarios WHERE scenario_uuid = :u"),
            {"u": scenario_uuid},
        ).one()
        return row.status, row.error_reason, row.error_message


def _events(scenario_uuid: uuid.UUID, *statuses: ScenarioStatus) -> list[tuple[str, bytes]]:
    return [
        (str(scenario_uuid), encode(StatusEvent(scenario_uuid=scenario_uuid, status=status))) for status in statuses
    ]


def test_results_are_stored_with_their_detections(
    make_inbox_loop: Callable[..., ConsumerLoop],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    scenario_uuid = add_scenario(session_factory, status=S.ACTIVE)
    awkward = frame(scenario_uuid, 3).model_copy(
        update={"detections": [Detection(class_name='a\\b "c"\td\n\u00e9\\N', confidence=1.0, bbox=(0, 0, 1, 1))]}
    )
    values = [
        *encoded_frames(scenario_uuid, range(3), people=2, run_id="r\tun\\1"),
        (str(scenario_uuid), encode(awkward)),
    ]
    produce(kafka_settings, _topics(kafka_settings)[0], values)

    run_loop_until(make_inbox_loop(), 4)

    with db_engine.connect() as connection:
        rows = connection.execute(
            text("SELECT run_id, frame_number, detections, timestamp FROM scenario_results ORDER BY frame_number")
        ).all()
    assert [(row.run_id, row.frame_number) for row in rows] == [("r\tun\\1", number) for number in range(3)] + [
        ("run-1", 3)
    ]
    assert rows[3].detections == [{"class": 'a\\b "c"\td\n\u00e9\\N', "confidence": 1.0, "bbox": [0.0, 0.0, 1.0, 1.0]}]
    assert rows[1].detections == [
        {"class": "person", "confidence": 0.5, "bbox": [0.0, 2.0, 30.0, 40.0]},
        {"class": "person", "confidence": 0.51, "bbox": [1.0, 2.0, 30.0, 40.0]},
    ]
    assert rows[1].timestamp.isoformat() == "2026-11-25T12:00:01+00:00"


def test_redelivered_and_duplicated_results_are_stored_once(
    make_inbox_loop: Callable[..., ConsumerLoop],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    scenario_uuid = add_scenario(session_factory, status=S.ACTIVE)
    results_topic = _topics(kafka_settings)[0]
    batch = encoded_frames(scenario_uuid, range(50))
    produce(kafka_settings, results_topic, batch + batch[:10])  # a producer retry duplicated ten of them
    produce(
        kafka_settings, results_topic, encoded_frames(scenario_uuid, range(40, 45), run_id="run-2")
    )  # a restarted runner
    duplicates_before = RESULTS_DUPLICATE._value.get()

    run_loop_until(make_inbox_loop(group="inbox"), 65)
    # The same batch again, as after a crash before the offset commit: a fresh group re-reads it all.
    run_loop_until(make_inbox_loop(group="inbox-replay"), 65)

    assert _stored(db_engine, scenario_uuid) == [("run-1", number) for number in range(50)] + [
        ("run-2", number) for number in range(40, 45)
    ]
    assert RESULTS_DUPLICATE._value.get() - duplicates_before == 10 + 65


def test_poison_and_unknown_scenario_messages_go_to_the_dlq_and_the_consumer_goes_on(
    make_inbox_loop: Callable[..., ConsumerLoop],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    results_topic, status_topic = _topics(kafka_settings)
    known, unknown = add_scenario(session_factory, status=S.IN_STARTUP_PROCESSING), uuid.uuid4()
    key = str(known)
    produce(
        kafka_settings,
        results_topic,
        [
            (key, b"\xff not json"),
            *encoded_frames(known, [0]),
            (key, b'{"scenario_uuid": "nope"}'),
            *encoded_frames(unknown, [0]),
            *encoded_frames(known, [1]),
        ],
    )
    produce(kafka_settings, status_topic, [*_events(unknown, S.ACTIVE), (key, b"[]"), *_events(known, S.ACTIVE)])
    loop = make_inbox_loop()

    run_loop_until(loop, 8)

    assert _stored(db_engine, known) == [("run-1", 0), ("run-1", 1)] and _stored(db_engine, unknown) == []
    assert _scenario(db_engine, known)[0] == "active"
    dead_results = consume(kafka_settings, dlq_name(results_topic), expected=3)
    dead_status = consume(kafka_settings, dlq_name(status_topic), expected=2)
    errors = sorted(dict(message.headers() or [])["dlq.error"].decode() for message in dead_results + dead_status)
    assert len(errors) == 5
    assert sum(f"unknown scenario_uuid {unknown}" in error for error in errors) == 2
    assert sum("FrameResult" in error for error in errors) == 2 and sum("StatusEvent" in error for error in errors) == 1
    # Still consuming after the poison: a later message is handled.
    produce(kafka_settings, results_topic, encoded_frames(known, [2]))
    run_loop_until(loop, 1)
    assert ("run-1", 2) in _stored(db_engine, known)


def _raw_result(
    scenario_uuid: uuid.UUID, frame_number: int, *, detection_class: str = "person", detections: int = 1
) -> tuple[str, bytes]:
    """A result as a forger or a broken producer could put it on the topic (no model checks)."""
    value = {
        "scenario_uuid": str(scenario_uuid),
        "run_id": "run-1",
        "frame_number": frame_number,
        "detections": [{"class": detection_class, "confidence": 0.5, "bbox": [0, 0, 1, 1]}] * detections,
        "timestamp": "2026-11-25T12:00:00Z",
    }
    return str(scenario_uuid), json.dumps(value).encode()


def test_values_postgresql_cannot_store_and_oversized_results_go_to_the_dlq_and_the_rest_is_stored(
    make_inbox_loop: Callable[..., ConsumerLoop],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    """Each of these stopped the inbox for every scenario before: they passed the contracts and
    PostgreSQL refused them, so the batch was retried forever."""
    results_topic, status_topic = _topics(kafka_settings)
    scenario = add_scenario(session_factory, status=S.ACTIVE)
    key = str(scenario)
    poison_results = [
        _raw_result(scenario, 1, detection_class="per\u0000son"),  # NUL: text and jsonb refuse it
        _raw_result(scenario, 10**19),  # beyond bigint
    ]
    oversized = _raw_result(scenario, 2, detection_class="x" * 60, detections=7_500)  # 0.8 MB: 7,500 boxes
    nul_status = json.dumps(
        {"scenario_uuid": key, "status": "failed", "reason": "DecodeError", "message": "bad\u0000frame"}
    ).encode()
    produce(
        kafka_settings, results_topic, [*encoded_frames(scenario, [0]), *poison_results, *encoded_frames(scenario, [3])]
    )
    produce(kafka_settings, status_topic, [(key, nul_status)])
    produce(kafka_settings, results_topic, [oversized])
    assert len(oversized[1]) > 800_000

    run_loop_until(make_inbox_loop(), 6)

    assert _stored(db_engine, scenario) == [("run-1", 0), ("run-1", 3)]
    assert _scenario(db_engine, scenario) == ("active", None, None)
    dead = consume(kafka_settings, dlq_name(results_topic), expected=3) + consume(
        kafka_settings, dlq_name(status_topic), expected=1
    )
    errors = [dict(message.headers() or [])["dlq.error"].decode() for message in dead]
    assert len(errors) == 4 and all(errors), errors
    assert any("pattern" in error for error in errors) and any(
        "less than or equal to 9223372036854775807" in error for error in errors
    )
    assert any("at most 1000 items" in error for error in errors)


def test_results_of_a_scenario_that_ended_before_the_grace_period_are_refused(
    kafka_settings: KafkaSettings, session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    results_topic, status_topic = _topics(kafka_settings)
    ended_long_ago, just_ended, running = (
        add_scenario(session_factory, status=status) for status in (S.INACTIVE, S.FAILED, S.ACTIVE)
    )
    stored_before = frame(ended_long_ago, 3)  # stored while it ran; its redelivery is no late result
    with db_engine.begin() as connection:
        connection.execute(
            text("UPDATE scenarios SET updated_at = now() - interval '1 hour' WHERE scenario_uuid = :u"),
            {"u": ended_long_ago},
        )
        connection.execute(
            text(
                "INSERT INTO scenario_results (scenario_uuid, run_id, frame_number, detections, timestamp) "
                "VALUES (:u, 'run-1', 3, '[]', now())"
            ),
            {"u": ended_long_ago},
        )
    inbox = Inbox(
        engine=db_engine,
        results_topic=results_topic,
        status_topic=status_topic,
        events_topic=topic_name(Topic.EVENTS, kafka_settings.topic_prefix),
        late_result_grace_seconds=600,
    )
    loop = ConsumerLoop(
        new_consumer=partial(make_consumer, kafka_settings, group_id=f"inbox-{uuid.uuid4().hex[:8]}"),
        dlq_producer=make_producer(kafka_settings),
        contracts=inbox.contracts,
        handler=inbox.handle,
        poll_timeout_seconds=0.5,
    )
    loop.consumer.subscribe(list(inbox.contracts))
    forged = [
        (
            str(ended_long_ago),
            encode(
                frame(ended_long_ago, 7).model_copy(
                    update={"detections": [Detection(class_name="x" * 100, confidence=1.0, bbox=(0, 0, 1, 1))] * 900}
                )
            ),
        )
    ]
    try:
        redelivery = [(str(ended_long_ago), encode(stored_before))]
        produce(
            kafka_settings,
            results_topic,
            [*forged, *redelivery, *encoded_frames(just_ended, [0]), *encoded_frames(running, [0])],
        )
        produce(kafka_settings, status_topic, _events(ended_long_ago, S.ACTIVE))  # ignored (terminal), not refused
        run_loop_until(loop, 5)
    finally:
        loop.consumer.close()

    assert (
        _stored(db_engine, ended_long_ago) == [("run-1", 3)]
        and _stored(db_engine, just_ended) == [("run-1", 0)]
        and _stored(db_engine, running) == [("run-1", 0)]
    )
    dead = consume(kafka_settings, dlq_name(results_topic), expected=1)
    assert [dict(message.headers() or [])["dlq.error"].decode() for message in dead] == [
        f"scenario {ended_long_ago} ended more than 600s ago; its results are no longer accepted"
    ]
    assert consume(kafka_settings, dlq_name(status_topic), expected=1, timeout_seconds=3) == []


def test_status_events_out_of_order_never_move_a_scenario_backwards(
    make_inbox_loop: Callable[..., ConsumerLoop],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    status_topic = _topics(kafka_settings)[1]
    scenario_uuid = add_scenario(session_factory, status=S.INIT_STARTUP)
    ignored_before = STATUS_IGNORED.labels("active", "in_startup_processing")._value.get()
    loop = make_inbox_loop()

    produce(
        kafka_settings,
        status_topic,
        _events(scenario_uuid, S.ACTIVE, S.IN_STARTUP_PROCESSING, S.ACTIVE, S.INIT_STARTUP),
    )
    run_loop_until(loop, 4)
    after_first = _scenario(db_engine, scenario_uuid)[0]
    produce(kafka_settings, status_topic, _events(scenario_uuid, S.INACTIVE, S.ACTIVE, S.IN_SHUTDOWN_PROCESSING))
    run_loop_until(loop, 3)

    assert after_first == "active"
    assert _scenario(db_engine, scenario_uuid)[0] == "inactive"
    assert STATUS_IGNORED.labels("active", "in_startup_processing")._value.get() == ignored_before + 1


def test_failed_event_stores_its_reason_and_a_masked_message(
    make_inbox_loop: Callable[..., ConsumerLoop],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    scenario_uuid = add_scenario(session_factory, status=S.ACTIVE)
    event = StatusEvent(
        scenario_uuid=scenario_uuid,
        status=S.FAILED,
        reason=FailureReason.SOURCE_UNREACHABLE,
        message="cannot open rtsp://admin:hunter2@cam.example/s",
    )
    with db_engine.connect() as connection:
        before = connection.execute(text("SELECT updated_at FROM scenarios")).scalar_one()
    produce(kafka_settings, _topics(kafka_settings)[1], [(str(scenario_uuid), encode(event))])

    run_loop_until(make_inbox_loop(), 1)

    assert _scenario(db_engine, scenario_uuid) == (
        "failed",
        "SourceUnreachable",
        "cannot open rtsp://admin:***@cam.example/s",
    )
    with db_engine.connect() as connection:
        assert connection.execute(text("SELECT updated_at FROM scenarios")).scalar_one() > before


def test_drop_reports_are_stored_per_run_once_whatever_their_order_and_shown_by_the_api(
    make_inbox_loop: Callable[..., ConsumerLoop],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    client: TestClient,
) -> None:
    """A live runner over its budget reports its run's totals with an unchanged `active`; redelivered,
    reordered and two runs' reports add up to what was really dropped, also after the scenario ended."""
    scenario_uuid = add_scenario(session_factory, status=S.ACTIVE)

    def report(
        run_id: str, dropped: int, first: int, last: int, status: ScenarioStatus = S.ACTIVE
    ) -> tuple[str, bytes]:
        drops = ResultDrops(run_id=run_id, dropped=dropped, first_frame=first, last_frame=last)
        return str(scenario_uuid), encode(StatusEvent(scenario_uuid=scenario_uuid, status=status, drops=drops))

    assert client.get(f"/api/v1/scenario/{scenario_uuid}").json()["runtime"]["results_dropped"] == 0
    reports = [
        report("run-a", 40, 100, 139),
        report("run-a", 40, 100, 139),
        report("run-a", 70, 100, 209),
        report("run-a", 40, 100, 139),
    ]
    produce(kafka_settings, _topics(kafka_settings)[1], [*reports, report("run-b", 5, 0, 4, S.INACTIVE)])
    run_loop_until(make_inbox_loop(), 5)

    body = client.get(f"/api/v1/scenario/{scenario_uuid}").json()
    assert (body["status"], body["runtime"]["results_dropped"]) == ("inactive", 75)
    [listed] = [
        item for item in client.get("/api/v1/scenarios").json()["items"] if item["scenario_uuid"] == str(scenario_uuid)
    ]
    assert listed["runtime"]["results_dropped"] == 75


def test_inbox_process_killed_mid_stream_stores_each_result_once(
    start_process: Callable[..., Process],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    results_topic, status_topic = _topics(kafka_settings)
    scenario_uuid = add_scenario(session_factory, status=S.IN_STARTUP_PROCESSING)
    total = 3000
    produce(kafka_settings, results_topic, encoded_frames(scenario_uuid, range(total)))
    # Small batches: the kill lands mid-stream. The shortest session: the restarted inbox gets the
    # dead one's partitions after 6 s instead of 45.
    env = {"VAP_INBOX__BATCH_SIZE": "20", "VAP_INBOX__SESSION_TIMEOUT_SECONDS": "6"}

    first = start_process("vap_api.inbox", name="inbox", extra_env=env)
    wait_until(lambda: _count(db_engine, scenario_uuid) >= 100, timeout_seconds=60, what="the inbox to store results")
    first.kill()
    assert _count(db_engine, scenario_uuid) < total
    produce(kafka_settings, status_topic, _events(scenario_uuid, S.ACTIVE))
    second = start_process("vap_api.inbox", name="inbox", extra_env=env)
    wait_until(lambda: _scenario(db_engine, scenario_uuid)[0] == "active", timeout_seconds=60, what="the status event")
    wait_until(lambda: _count(db_engine, scenario_uuid) >= total, timeout_seconds=90, what="every result")
    second.wait_for_log("inbox started")

    assert second.terminate() == 0
    assert _stored(db_engine, scenario_uuid) == [("run-1", number) for number in range(total)]
    assert "inbox stopped" in second.log_text()


def test_an_inbox_restarted_under_its_static_instance_id_resumes_at_once_not_after_the_session_timeout(
    start_process: Callable[..., Process],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    """A killed inbox's partitions used to wait for its session timeout (Kafka's 45 s) before anyone
    stored again; restarted with the same VAP_KAFKA__INSTANCE_ID it rejoins without a rebalance."""
    results_topic, _ = _topics(kafka_settings)
    scenario_uuid = add_scenario(session_factory, status=S.ACTIVE)
    env = {"VAP_INBOX__SESSION_TIMEOUT_SECONDS": "60", "VAP_KAFKA__INSTANCE_ID": "inbox-test-0"}
    first = start_process("vap_api.inbox", name="inbox", extra_env=env)
    produce(kafka_settings, results_topic, encoded_frames(scenario_uuid, range(10)))
    wait_until(lambda: _count(db_engine, scenario_uuid) == 10, timeout_seconds=60, what="the first inbox to store")
    first.kill()

    second = start_process("vap_api.inbox", name="inbox", extra_env=env)
    second.wait_for_log("inbox started")
    restarted = time.monotonic()
    produce(kafka_settings, results_topic, encoded_frames(scenario_uuid, range(10, 20)))
    wait_until(lambda: _count(db_engine, scenario_uuid) == 20, timeout_seconds=50, what="the restarted inbox to store")
    failover_seconds = time.monotonic() - restarted
    print(
        f"FAILOVER inbox restarted under its instance id: stores again {failover_seconds:.2f}s after its start "
        "(session timeout 60 s)"
    )
    assert failover_seconds < 15, failover_seconds
    assert second.terminate() == 0
