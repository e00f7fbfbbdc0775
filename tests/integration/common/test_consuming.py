"""The shared consumer loop on the real broker: poison -> DLQ, handler retried, offsets after effect."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from functools import partial

from sqlalchemy import Engine, text

from tests.helpers import consume
from vap_common.consuming import Accepted, ConsumerLoop, Rejected
from vap_common.contracts import StatusEvent, encode
from vap_common.db import is_permanent_error
from vap_common.kafka import make_consumer, make_producer
from vap_common.lifecycle import ScenarioStatus
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, dlq_name, topic_name


def _run_until(loop: ConsumerLoop, total: int, attempts: int = 60) -> None:
    seen = 0
    for _ in range(attempts):
        seen += loop.run_once()
        if seen >= total:
            return
    raise AssertionError(f"only {seen} of {total} messages consumed")


def test_poison_to_dlq_handler_retried_and_offsets_committed_after_effect(kafka_settings: KafkaSettings) -> None:
    topic = topic_name(Topic.SCENARIO_STATUS, kafka_settings.topic_prefix)
    key = str(uuid.uuid4())
    good = [
        StatusEvent(scenario_uuid=uuid.UUID(key), status=status)
        for status in (ScenarioStatus.IN_STARTUP_PROCESSING, ScenarioStatus.ACTIVE)
    ]
    refused = StatusEvent(
        scenario_uuid=uuid.UUID(key), status=ScenarioStatus.FAILED, message="handler refuses this one"
    )
    producer = make_producer(kafka_settings)
    for value in (encode(good[0]), b"not json", encode(good[1]), b'{"scenario_uuid": "x"}', encode(refused)):
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0

    handled: list[StatusEvent] = []
    calls = {"n": 0}

    def handler(batch: Sequence[Accepted]) -> Sequence[Rejected]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("database briefly down")  # the loop must retry the same batch
        rejected = [Rejected(item.message, "refused by handler") for item in batch if item.value == refused]
        handled.extend(item.value for item in batch if item.value != refused)  # type: ignore[misc]
        return rejected

    group = f"loop-{uuid.uuid4().hex[:8]}"
    loop = ConsumerLoop(
        new_consumer=partial(make_consumer, kafka_settings, group_id=group),
        dlq_producer=producer,
        contracts={topic: StatusEvent},
        handler=handler,
        stop=threading.Event(),
    )
    loop.consumer.subscribe([topic])
    try:
        _run_until(loop, total=5)
    finally:
        loop.consumer.close()

    assert handled == good
    assert calls["n"] >= 2
    dead = consume(kafka_settings, dlq_name(topic), expected=3)
    assert sorted(message.value() for message in dead) == sorted(
        [b"not json", b'{"scenario_uuid": "x"}', encode(refused)]
    )
    headers = dict(dead[0].headers() or [])
    assert headers["dlq.original.topic"] == topic.encode() and headers["dlq.error"]
    # Everything was committed after the effect: the same group has nothing left to read.
    assert consume(kafka_settings, topic, expected=1, timeout_seconds=4, group=group) == []


def test_a_value_postgresql_refuses_for_good_goes_to_the_dlq_and_the_rest_of_its_batch_is_stored(
    kafka_settings: KafkaSettings, db_engine: Engine
) -> None:
    """The database's refusal (here a CHECK constraint) is not retried: halving the batch finds the one
    message it is about; a connection error in the same place would be retried instead."""
    with db_engine.begin() as connection:
        connection.execute(text("CREATE TABLE probe (message text CHECK (length(message) < 20))"))
    topic = topic_name(Topic.SCENARIO_STATUS, kafka_settings.topic_prefix)
    scenario = uuid.uuid4()
    messages = [f"event {index}" for index in range(9)]
    messages[6] = "far too long for the probe table"
    producer = make_producer(kafka_settings)
    for message in messages:
        producer.produce(
            topic,
            key=str(scenario),
            value=encode(StatusEvent(scenario_uuid=scenario, status=ScenarioStatus.ACTIVE, message=message)),
        )
    assert producer.flush(30) == 0

    def handler(batch: Sequence[Accepted]) -> Sequence[Rejected]:
        with db_engine.begin() as connection:
            for item in batch:
                connection.execute(text("INSERT INTO probe VALUES (:m)"), {"m": item.value.message})
        return []

    loop = ConsumerLoop(
        new_consumer=partial(make_consumer, kafka_settings, group_id=f"loop-{uuid.uuid4().hex[:8]}"),
        dlq_producer=producer,
        contracts={topic: StatusEvent},
        handler=handler,
        is_permanent=is_permanent_error,
    )
    loop.consumer.subscribe([topic])
    try:
        _run_until(loop, total=9)
    finally:
        loop.consumer.close()

    with db_engine.connect() as connection:
        assert sorted(connection.execute(text("SELECT message FROM probe")).scalars()) == sorted(
            m for m in messages if len(m) < 20
        )
    dead = consume(kafka_settings, dlq_name(topic), expected=1)
    assert len(dead) == 1 and b"far too long" in dead[0].value()
    assert "refused for good: IntegrityError" in dict(dead[0].headers() or [])["dlq.error"].decode()
