"""The outbox relay on real PostgreSQL and Kafka: in process, and as a real process killed with -9."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import Message
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import consume, wait_until
from tests.integration.api.api_test_support import Process
from vap_api.outbox.relay import OUTBOX_ID_HEADER, Relay
from vap_api.outbox.service import enqueue
from vap_common.contracts import ScenarioCommand, decode
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, topic_name

INIT = "/api/v1/scenario/init"
SECRET = "Relay-s3cret"


def _commands_topic(settings: KafkaSettings) -> str:
    return topic_name(Topic.INIT_SCENARIO, settings.topic_prefix)


def _outbox_id(message: Message) -> int:
    return int(dict(message.headers() or [])[OUTBOX_ID_HEADER])


def _enqueue(factory: sessionmaker[Session], scenario_uuid: uuid.UUID, command: str) -> None:
    with factory() as session, session.begin():
        enqueue(
            session=session,
            command=ScenarioCommand(scenario_uuid=scenario_uuid, command=command, camera_url="rtsp://cam.example/s"),
        )  # type: ignore[arg-type]


def _unpublished(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(text("SELECT count(*) FROM outbox_scenario WHERE published_at IS NULL")).scalar_one()
        )


def _drain(relay: Relay) -> int:
    published = 0
    while outcome := relay.run_once().published:
        published += outcome
    return published


def test_relay_publishes_commands_keyed_by_scenario_and_marks_them(
    client: TestClient, make_relay: Callable[..., Relay], kafka_settings: KafkaSettings, db_engine: Engine
) -> None:
    scenario_uuid = client.post(INIT, json={"camera_url": "rtsp://cam.example/s"}).json()["scenario_uuid"]
    assert client.post(f"/api/v1/scenario/{scenario_uuid}/shutdown").status_code == 202
    relay = make_relay()

    first, second, third = relay.run_once(), relay.run_once(), relay.run_once()

    # One row per scenario per batch: the shutdown becomes eligible once the start is marked.
    assert (first.published, second.published, third.published) == (1, 1, 0)
    messages = consume(kafka_settings, _commands_topic(kafka_settings), expected=2)
    commands = [decode(ScenarioCommand, message.value()) for message in messages]
    assert [command.command for command in commands] == ["start", "shutdown"]
    assert {message.key() for message in messages} == {scenario_uuid.encode()}
    assert [dict(message.headers() or [])["vap.event_type"] for message in messages] == [b"start", b"shutdown"]
    with db_engine.connect() as connection:
        rows = connection.execute(
            text("SELECT published_at IS NOT NULL, attempts, last_error FROM outbox_scenario ORDER BY id")
        ).all()
    assert [tuple(row) for row in rows] == [(True, 1, None), (True, 1, None)]
    assert relay.refresh_gauge() == 0.0


def test_a_scenario_command_waits_while_its_older_row_is_held_by_another_relay(
    make_relay: Callable[..., Relay],
    session_factory: sessionmaker[Session],
    db_engine: Engine,
    kafka_settings: KafkaSettings,
) -> None:
    held, other = uuid.uuid4(), uuid.uuid4()
    _enqueue(session_factory, held, "start")
    _enqueue(session_factory, held, "shutdown")
    _enqueue(session_factory, other, "start")
    relay = make_relay()

    # Another relay is publishing `held`'s start: it holds the row lock and has not marked it yet.
    with db_engine.connect() as other_relay:
        other_relay.execute(text("SELECT id FROM outbox_scenario WHERE id = 1 FOR UPDATE"))
        during = relay.run_once()
        other_relay.rollback()  # it crashed before marking: the row is unpublished and free again
    after = [relay.run_once().published for _ in range(3)]

    assert during.published == 1  # only `other`; `held`'s shutdown must not overtake its start
    assert after == [1, 1, 0]
    per_scenario: dict[uuid.UUID, list[str]] = defaultdict(list)
    for message in consume(
        kafka_settings, _commands_topic(kafka_settings), expected=3
    ):  # one key: one partition, in order
        command = decode(ScenarioCommand, message.value())
        per_scenario[command.scenario_uuid].append(command.command)
    assert per_scenario == {other: ["start"], held: ["start", "shutdown"]}


def test_two_relays_publish_each_row_exactly_once_in_scenario_order(
    make_relay: Callable[..., Relay],
    session_factory: sessionmaker[Session],
    db_engine: Engine,
    kafka_settings: KafkaSettings,
) -> None:
    scenarios = [uuid.uuid4() for _ in range(60)]
    for scenario_uuid in scenarios:  # each scenario's two rows side by side: the easiest to reorder
        _enqueue(session_factory, scenario_uuid, "start")
        _enqueue(session_factory, scenario_uuid, "shutdown")
    relays = [make_relay(batch_size=1), make_relay(batch_size=1)]
    counts = [0, 0]

    def work(index: int) -> None:
        counts[index] = _drain(relays[index])

    threads = [threading.Thread(target=work, args=(index,), daemon=True) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for relay in relays:  # a relay that found every row locked may have stopped early
        counts[0] += _drain(relay)

    assert sum(counts) == 120 and _unpublished(db_engine) == 0
    messages = consume(kafka_settings, _commands_topic(kafka_settings), expected=120)
    assert sorted(_outbox_id(message) for message in messages) == list(range(1, 121))  # each row exactly once
    per_scenario: dict[uuid.UUID, list[str]] = defaultdict(list)
    for message in sorted(messages, key=lambda item: (item.partition(), item.offset())):
        command = decode(ScenarioCommand, message.value())
        per_scenario[command.scenario_uuid].append(command.command)
    assert all(per_scenario[scenario_uuid] == ["start", "shutdown"] for scenario_uuid in scenarios)


def test_relay_crash_between_publish_and_mark_republishes_the_same_record(
    make_relay: Callable[..., Relay],
    session_factory: sessionmaker[Session],
    db_engine: Engine,
    kafka_settings: KafkaSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario_uuid = uuid.uuid4()
    _enqueue(session_factory, scenario_uuid, "start")
    crashing = make_relay()

    def crash(*_args: object) -> None:
        raise SystemExit("killed after the broker acknowledged, before marking")

    monkeypatch.setattr(crashing, "_mark", crash)
    with pytest.raises(SystemExit):
        crashing.run_once()
    assert _unpublished(db_engine) == 1  # the mark rolled back with the transaction

    assert make_relay().run_once().published == 1
    assert _unpublished(db_engine) == 0
    copies = consume(kafka_settings, _commands_topic(kafka_settings), expected=2)
    # The duplicate is harmless downstream: the same key, outbox id and bytes (issued_at included),
    # so a consumer that tracks the outbox id or the scenario's state sees one command.
    assert len(copies) == 2
    assert len({(message.key(), message.value(), _outbox_id(message)) for message in copies}) == 1


def test_kafka_down_keeps_rows_unpublished_and_a_later_relay_publishes_them(
    make_relay: Callable[..., Relay],
    session_factory: sessionmaker[Session],
    db_engine: Engine,
    kafka_settings: KafkaSettings,
) -> None:
    scenario_uuid = uuid.uuid4()
    _enqueue(session_factory, scenario_uuid, "start")
    unreachable = kafka_settings.model_copy(update={"bootstrap_servers": "127.0.0.1:1"})

    outcome = make_relay(kafka=unreachable, delivery_timeout_seconds=1.0).run_once()

    assert (outcome.published, outcome.failed) == (0, 1)
    with db_engine.connect() as connection:
        row = connection.execute(text("SELECT published_at, attempts, last_error FROM outbox_scenario")).one()
    assert row.published_at is None and row.attempts == 1 and row.last_error
    assert make_relay().run_once().published == 1
    [message] = consume(kafka_settings, _commands_topic(kafka_settings), expected=1)
    assert decode(ScenarioCommand, message.value()).scenario_uuid == scenario_uuid


def test_running_relay_wakes_on_notify_and_stops_on_request(
    make_relay: Callable[..., Relay], client: TestClient, kafka_settings: KafkaSettings, db_engine: Engine
) -> None:
    relay = make_relay(poll_interval_seconds=600.0)  # only the NOTIFY can wake it within the test
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: relay._listener is not None, what="the relay to LISTEN")
        scenario_uuid = client.post(INIT, json={"camera_url": "rtsp://cam.example/s"}).json()["scenario_uuid"]
        [message] = consume(kafka_settings, _commands_topic(kafka_settings), expected=1, timeout_seconds=20)
    finally:
        relay.stop.set()
        thread.join(30)
    assert message.key() == scenario_uuid.encode()
    assert not thread.is_alive() and _unpublished(db_engine) == 0


def test_prune_deletes_only_published_rows_past_the_retention(
    make_relay: Callable[..., Relay], session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    for _ in range(5):
        _enqueue(session_factory, uuid.uuid4(), "start")
    with db_engine.begin() as connection:
        connection.execute(text("UPDATE outbox_scenario SET published_at = now() - interval '3 hours' WHERE id <= 3"))
        connection.execute(text("UPDATE outbox_scenario SET published_at = now() - interval '10 minutes' WHERE id = 4"))
        connection.execute(text("UPDATE outbox_scenario SET created_at = now() - interval '2 minutes' WHERE id = 5"))
    relay = make_relay(retention_hours=1.0, prune_batch_size=2)

    assert relay.prune() == 3
    with db_engine.connect() as connection:
        left = connection.execute(text("SELECT id FROM outbox_scenario ORDER BY id")).scalars().all()
    assert left == [4, 5]  # recent published row and the unpublished one stay
    assert 110 <= relay.refresh_gauge() < 600


def test_relay_process_killed_between_publish_and_mark_republishes_after_restart(
    start_process: Callable[..., Process], client: TestClient, db_engine: Engine, kafka_settings: KafkaSettings
) -> None:
    url = f"rtsp://admin:{SECRET}@cam.example/s"
    scenarios = [client.post(INIT, json={"camera_url": url}).json()["scenario_uuid"] for _ in range(3)]
    topic = _commands_topic(kafka_settings)
    with db_engine.connect() as blocker:
        # SHARE mode lets the relay claim (ROW SHARE) and publish, but blocks its UPDATE that marks.
        blocker.execute(text("LOCK TABLE outbox_scenario IN SHARE MODE"))
        first = start_process("vap_api.outbox", name="relay")
        published = consume(kafka_settings, topic, expected=3, timeout_seconds=60)
        assert len(published) == 3 and _unpublished(db_engine) == 3
        first.kill()
        blocker.rollback()

    second = start_process("vap_api.outbox", name="relay")
    wait_until(lambda: _unpublished(db_engine) == 0, timeout_seconds=60, what="the restarted relay to mark every row")
    second.wait_for_log("outbox relay started")
    assert second.terminate() == 0

    messages = consume(kafka_settings, topic, expected=6, timeout_seconds=30)
    assert sorted(message.key().decode() for message in messages) == sorted(
        scenarios * 2
    )  # each row twice: at least once
    logs = first.log_text() + second.log_text()
    assert "outbox relay stopped" in second.log_text() and SECRET not in logs
