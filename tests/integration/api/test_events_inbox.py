"""The `events` topic through the inbox into scenario_events on real Kafka and PostgreSQL: each event
stored once across redeliveries and a kill -9, poison and unknown scenarios dead-lettered."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import consume, wait_until
from tests.integration.api.api_test_support import Process, add_scenario, produce, run_loop_until
from tests.integration.api.events_test_support import encoded, object_event, stored_keys
from vap_api.inbox.consumer import EVENTS_DUPLICATE, EVENTS_STORED
from vap_common.consuming import MESSAGES_REJECTED, ConsumerLoop
from vap_common.contracts import EventType
from vap_common.lifecycle import ScenarioStatus
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, dlq_name, topic_name


def _events_topic(settings: KafkaSettings) -> str:
    return topic_name(Topic.EVENTS, settings.topic_prefix)


def test_every_event_type_is_stored_with_its_fields(
    make_inbox_loop: Callable[..., ConsumerLoop],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    scenario = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    events = [object_event(scenario, number, event_type=kind) for number, kind in enumerate(EventType)]
    produce(kafka_settings, _events_topic(kafka_settings), encoded(events))

    run_loop_until(make_inbox_loop(), len(events))

    with db_engine.connect() as connection:
        rows = connection.execute(
            text(
                'SELECT run_id, sequence, type, track_id, "class", frame_number, captured_at, zone, line, '
                "direction, dwell_seconds FROM scenario_events WHERE scenario_uuid = :u ORDER BY id"
            ),
            {"u": scenario},
        ).all()
    assert [tuple(row) for row in rows] == [
        (
            event.run_id,
            event.sequence,
            event.type.value,
            event.track_id,
            event.class_name,
            event.frame_number,
            event.captured_at,
            event.zone,
            event.line,
            event.direction,
            event.dwell_seconds,
        )
        for event in events
    ]


def test_redelivered_and_duplicated_events_are_stored_once_and_a_new_run_does_not_collide(
    make_inbox_loop: Callable[..., ConsumerLoop],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    scenario = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    batch = encoded(object_event(scenario, number) for number in range(30))
    restarted = encoded(object_event(scenario, number, run_id="run-2") for number in range(5))
    produce(kafka_settings, _events_topic(kafka_settings), batch + batch[:10] + restarted)  # a producer retry
    stored_before, duplicates_before = EVENTS_STORED._value.get(), EVENTS_DUPLICATE._value.get()

    run_loop_until(make_inbox_loop(group="inbox"), 45)
    # The same again, as after a crash before the offset commit: a fresh group re-reads it all.
    run_loop_until(make_inbox_loop(group="inbox-replay"), 45)

    assert stored_keys(db_engine, scenario) == [("run-1", n) for n in range(30)] + [("run-2", n) for n in range(5)]
    assert EVENTS_STORED._value.get() - stored_before == 35
    assert EVENTS_DUPLICATE._value.get() - duplicates_before == 10 + 45


def test_poison_and_unknown_scenario_events_go_to_the_dlq_and_the_consumer_goes_on(
    make_inbox_loop: Callable[..., ConsumerLoop],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    topic = _events_topic(kafka_settings)
    known, unknown = add_scenario(session_factory, status=ScenarioStatus.ACTIVE), uuid.uuid4()
    key = str(known)
    mismatched = json.loads(object_event(known, 9).model_dump_json(by_alias=True)) | {"zone": "dock"}
    nul = json.loads(object_event(known, 8, event_type=EventType.OBJECT_ENTERED).model_dump_json(by_alias=True))
    poison = [
        (key, b"\xff not json"),
        (key, json.dumps(mismatched).encode()),  # a zone on object_appeared
        (key, json.dumps(nul | {"zone": "do\u0000ck"}).encode()),
    ]
    rejected_before = MESSAGES_REJECTED.labels(topic)._value.get()
    produce(
        kafka_settings,
        topic,
        [*encoded([object_event(known, 0)]), *poison, *encoded([object_event(unknown, 0), object_event(known, 1)])],
    )
    loop = make_inbox_loop()

    run_loop_until(loop, 6)

    assert stored_keys(db_engine, known) == [("run-1", 0), ("run-1", 1)] and stored_keys(db_engine, unknown) == []
    dead = consume(kafka_settings, dlq_name(topic), expected=4)
    errors = sorted(dict(message.headers() or [])["dlq.error"].decode() for message in dead)
    assert len(errors) == 4, errors
    assert sum(f"unknown scenario_uuid {unknown}" in error for error in errors) == 1
    assert sum("zone is not allowed for object_appeared" in error for error in errors) == 1
    assert sum("pattern" in error for error in errors) == 1
    assert MESSAGES_REJECTED.labels(topic)._value.get() - rejected_before == 4
    # Still consuming after the poison.
    produce(kafka_settings, topic, encoded([object_event(known, 2)]))
    run_loop_until(loop, 1)
    assert ("run-1", 2) in stored_keys(db_engine, known)


def test_inbox_process_killed_mid_stream_stores_each_event_once(
    start_process: Callable[..., Process],
    kafka_settings: KafkaSettings,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    scenario = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    total = 3000
    produce(kafka_settings, _events_topic(kafka_settings), encoded(object_event(scenario, n) for n in range(total)))
    # Small batches: the kill lands mid-stream; the shortest session: the restarted inbox gets the
    # dead one's partitions after 6 s instead of 45.
    env = {"VAP_INBOX__BATCH_SIZE": "20", "VAP_INBOX__SESSION_TIMEOUT_SECONDS": "6"}

    def stored() -> int:
        return len(stored_keys(db_engine, scenario))

    first = start_process("vap_api.inbox", name="inbox", extra_env=env)
    wait_until(lambda: stored() >= 100, timeout_seconds=60, what="the inbox to store events")
    first.kill()
    assert stored() < total
    second = start_process("vap_api.inbox", name="inbox", extra_env=env)
    wait_until(lambda: stored() >= total, timeout_seconds=90, what="every event")
    second.wait_for_log("inbox started")

    assert second.terminate() == 0
    assert stored_keys(db_engine, scenario) == [("run-1", n) for n in range(total)]
