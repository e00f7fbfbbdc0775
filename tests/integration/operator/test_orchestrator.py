"""The orchestrator's consumer loop on the real broker and database (in-process, one batch at a time)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.operator.operator_test_support import StatusLog, TopicReader, produce, shutdown, start
from vap_common.consuming import ConsumerLoop
from vap_common.contracts import DeployCommand, decode
from vap_common.kafka import make_producer
from vap_common.schema import Worker
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, dlq_name, topic_name
from vap_operator.orchestrator import build_loop


@pytest.fixture
def orchestrator(kafka_settings: KafkaSettings, sessions: sessionmaker[Session]) -> Iterator[ConsumerLoop]:
    loop = build_loop(
        kafka=kafka_settings,
        sessions=sessions,
        group_id=f"{kafka_settings.topic_prefix}orch",
        poll_timeout_seconds=0.5,
        stop=threading.Event(),
        stall_timeout_seconds=120,
    )
    loop.consumer.subscribe(list(loop.contracts))
    yield loop
    loop.consumer.close()


def run_until(loop: ConsumerLoop, total: int) -> None:
    seen = 0
    for _ in range(60):
        seen += loop.run_once()
        if seen >= total:
            return
    raise AssertionError(f"only {seen} of {total} commands consumed")


def rows(sessions: sessionmaker[Session]) -> dict[uuid.UUID, Worker]:
    with sessions() as session:
        return {row.scenario_uuid: row for row in session.scalars(select(Worker))}


def deploys(kafka_settings: KafkaSettings, expected: int) -> list[DeployCommand]:
    """The to_deploy messages, once ``expected`` arrived (and a last poll shows no extra one)."""
    reader = TopicReader(kafka_settings, Topic.TO_DEPLOY)
    try:
        for _ in range(40):
            if len(reader.poll(0.25)) >= expected:
                break
        reader.poll(0.5)
        return [decode(DeployCommand, value) for value in reader.values]
    finally:
        reader.close()


def test_start_registers_the_worker_reports_and_deploys(
    orchestrator: ConsumerLoop, kafka_settings: KafkaSettings, sessions: sessionmaker[Session], status_log: StatusLog
) -> None:
    scenario = uuid.uuid4()
    produce(
        kafka_settings,
        Topic.INIT_SCENARIO,
        [start(scenario, "rtsp://admin:pw@cam.example/s", name="hog_person", settings={"stride": 2})],
    )
    run_until(orchestrator, 1)

    row = rows(sessions)[scenario]
    assert (row.worker_id, row.status, row.desired_state, row.camera_url) == (
        f"w-{scenario}",
        "in_startup_processing",
        "active",
        "rtsp://admin:pw@cam.example/s",
    )
    assert row.detector == {"name": "hog_person", "settings": {"stride": 2}}
    status_log.wait_for(scenario, [("in_startup_processing", None)])
    (deploy,) = deploys(kafka_settings, 1)
    assert (deploy.scenario_uuid, deploy.worker_id, deploy.action, deploy.camera_url) == (
        scenario,
        f"w-{scenario}",
        "deploy",
        "rtsp://admin:pw@cam.example/s",
    )
    assert deploy.detector.name == "hog_person"


def test_replays_change_no_row_and_a_shutdown_before_its_start_is_never_deployed(
    orchestrator: ConsumerLoop, kafka_settings: KafkaSettings, sessions: sessionmaker[Session], status_log: StatusLog
) -> None:
    normal, early = uuid.uuid4(), uuid.uuid4()
    produce(
        kafka_settings,
        Topic.INIT_SCENARIO,
        [start(normal), start(normal), shutdown(early), start(early), start(early), shutdown(normal), shutdown(normal)],
    )
    run_until(orchestrator, 7)

    stored = rows(sessions)
    assert len(stored) == 2
    assert (stored[normal].desired_state, stored[normal].status) == ("inactive", "in_shutdown_processing")
    assert (stored[early].desired_state, stored[early].status) == ("inactive", "in_shutdown_processing")
    actions = [(d.scenario_uuid, d.action) for d in deploys(kafka_settings, 5)]
    assert (early, "deploy") not in actions
    assert [a for s, a in actions if s == normal] == [
        "deploy",
        "deploy",
        "stop",
        "stop",
    ]  # replays re-publish, never reverse
    status_log.wait_for(normal, [("in_startup_processing", None), ("in_shutdown_processing", None)])
    status_log.wait_for(early, [("in_shutdown_processing", None)])
    assert status_log.steps(early) == [("in_shutdown_processing", None)]


def test_poison_command_goes_to_the_dead_letter_topic_and_the_loop_goes_on(
    orchestrator: ConsumerLoop, kafka_settings: KafkaSettings, sessions: sessionmaker[Session]
) -> None:
    scenario = uuid.uuid4()
    producer = make_producer(kafka_settings)
    topic = topic_name(Topic.INIT_SCENARIO, kafka_settings.topic_prefix)
    # A NUL in the camera URL passed the contract before and PostgreSQL refused the workers row:
    # the orchestrator retried it forever, for every scenario behind it.
    nul_url = (
        start(uuid.uuid4())
        .model_dump_json()
        .replace("rtsp://cam.example/stream", "rtsp://cam\\u0000.example/s")
        .encode()
    )
    assert b"\\u0000" in nul_url
    producer.produce(topic, key=str(scenario), value=b'{"scenario_uuid": "nope", "command": "start"}')
    producer.produce(topic, key=str(scenario), value=nul_url)
    producer.produce(topic, key=str(scenario), value=start(scenario).model_dump_json().encode())
    assert producer.flush(30) == 0
    run_until(orchestrator, 3)

    assert list(rows(sessions)) == [scenario]
    reader = TopicReader(kafka_settings, dlq_name(topic))
    try:
        for _ in range(10):
            if len(reader.poll(0.5)) >= 2:
                break
        assert reader.values == [b'{"scenario_uuid": "nope", "command": "start"}', nul_url]
    finally:
        reader.close()
