"""Fixtures of the API tests: the app on this test's schema, relays and inboxes on its topics."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import CAMERA_KEYS, child_environment, service_settings
from tests.integration.api.api_test_support import Process, bearer, issue_key
from vap_api.inbox.consumer import Inbox
from vap_api.main import create_app
from vap_api.outbox.relay import Relay
from vap_api.settings import ApiSettings, RelayOptions
from vap_common.consuming import ConsumerLoop
from vap_common.db import make_engine, make_session_factory
from vap_common.kafka import make_consumer, make_producer
from vap_common.settings import DatabaseSettings, KafkaSettings
from vap_common.topics import Topic, topic_name


@pytest.fixture
def api_settings(db_settings: DatabaseSettings) -> ApiSettings:
    return ApiSettings(database=db_settings, environment="test", access_log=False, camera_keys=CAMERA_KEYS)


@pytest.fixture
def api_key(session_factory: sessionmaker[Session]) -> str:
    """A key of the default tenant (which the rows tests write directly belong to) that may read and write."""
    return issue_key(session_factory)


@pytest.fixture
def make_client(api_settings: ApiSettings, api_key: str) -> Callable[..., TestClient]:
    """``make_client(settings=None, **options)``: a TestClient of the real app (this test's settings unless
    ``settings``) that sends ``api_key``."""

    def make(settings: ApiSettings | None = None, **options: Any) -> TestClient:
        return TestClient(create_app(settings or api_settings), headers=bearer(api_key), **options)

    return make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> Iterator[TestClient]:
    """The real app on this test's schema; server errors come back as responses, as over HTTP."""
    with make_client(raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def session_factory(db_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(db_engine)


FAST_RELAY = RelayOptions(
    batch_size=50,
    poll_interval_seconds=0.2,
    delivery_timeout_seconds=5.0,
    min_backoff_seconds=0.05,
    max_backoff_seconds=0.5,
)


@pytest.fixture
def make_relay(db_settings: DatabaseSettings, kafka_settings: KafkaSettings) -> Iterator[Callable[..., Relay]]:
    """Relays on this test's schema and topics, each with its own engine and producer."""
    engines: list[Engine] = []

    def factory(*, kafka: KafkaSettings | None = None, **options: float) -> Relay:
        engine = make_engine(db_settings, pool_size=2)
        engines.append(engine)
        return Relay(engine=engine, kafka=kafka or kafka_settings, options=FAST_RELAY.model_copy(update=options))

    yield factory
    for engine in engines:
        engine.dispose()


@pytest.fixture
def inbox(db_engine: Engine, kafka_settings: KafkaSettings) -> Inbox:
    prefix = kafka_settings.topic_prefix
    return Inbox(
        engine=db_engine,
        results_topic=topic_name(Topic.RESULTS, prefix),
        status_topic=topic_name(Topic.SCENARIO_STATUS, prefix),
        events_topic=topic_name(Topic.EVENTS, prefix),
    )


@pytest.fixture
def make_inbox_loop(inbox: Inbox, kafka_settings: KafkaSettings) -> Iterator[Callable[..., ConsumerLoop]]:
    """ConsumerLoops running the inbox handler; consumers are closed after the test."""
    loops: list[ConsumerLoop] = []

    def factory(*, group: str | None = None) -> ConsumerLoop:
        loop = ConsumerLoop(
            new_consumer=partial(make_consumer, kafka_settings, group_id=group or f"inbox-{uuid.uuid4().hex[:8]}"),
            dlq_producer=make_producer(kafka_settings),
            contracts=inbox.contracts,
            handler=inbox.handle,
            stop=threading.Event(),
            poll_timeout_seconds=0.5,
            max_backoff_seconds=0.5,
        )
        loop.consumer.subscribe(list(inbox.contracts))
        loops.append(loop)
        return loop

    yield factory
    for loop in loops:
        loop.consumer.close()


@pytest.fixture
def process_env(db_settings: DatabaseSettings, kafka_settings: KafkaSettings) -> dict[str, str]:
    """Environment of a vap_api subprocess pointed at this test's schema and topic prefix."""
    return child_environment(service_settings(db_settings, kafka_settings, VAP_METRICS_PORT="0"))


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def start_process(python: str, process_env: dict[str, str], log_dir: Path) -> Iterator[Callable[..., Process]]:
    """Start ``python -m <module>`` with this test's environment (plus ``extra_env``); killed after the test."""
    started: list[Process] = []

    def factory(module: str, *, extra_env: dict[str, str] | None = None, name: str | None = None) -> Process:
        log_path = log_dir / f"{name or module}-{len(started)}.log"
        process = Process(python, module, {**process_env, **(extra_env or {})}, log_path)
        started.append(process)
        return process

    yield factory
    for process in started:
        process.ensure_stopped()
