"""The local runtime's main loop: to_deploy -> Supervisor, in the main thread, until ``stop`` is set."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine, text

from vap_common.consuming import Accepted, ConsumerLoop, Rejected
from vap_common.contracts import DeployCommand
from vap_common.db import make_session_factory
from vap_common.kafka import make_consumer, make_producer
from vap_common.topics import Topic, topic_name
from vap_operator.local.supervisor import Supervisor, runner_base_environment
from vap_operator.publishing import Publisher
from vap_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


class LocalDeployer:
    """ConsumerLoop handler for to_deploy (local runtime): the effect (process started, pid stored) is
    durable when it returns."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def __call__(self, batch: Sequence[Accepted]) -> Sequence[Rejected]:
        for item in batch:
            assert isinstance(item.value, DeployCommand)
            if item.value.action == "deploy":
                self._supervisor.deploy(item.value)
            else:
                self._supervisor.stop(item.value)
        return []


class AnotherRuntimeRunning(RuntimeError):
    """Only one local runtime may run per database schema (it resumes every active scenario)."""


@contextmanager
def single_instance(engine: Engine, schema_name: str | None) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock for the runtime's lifetime (released if the process dies)."""
    key = f"vap-local-runtime:{schema_name or 'public'}"
    with engine.connect() as connection:
        if not connection.execute(text("SELECT pg_try_advisory_lock(hashtext(:key))"), {"key": key}).scalar():
            raise AnotherRuntimeRunning(f"another local runtime holds the lock {key!r}")
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})


def run_local(settings: OperatorSettings, engine: Engine, stop: threading.Event) -> None:
    """Run the local runtime until ``stop`` is set; every runner is stopped on the way out."""
    kafka = settings.kafka
    producer = make_producer(kafka)
    supervisor = Supervisor(
        sessions=make_session_factory(engine),
        publisher=Publisher(producer, topic_prefix=kafka.topic_prefix),
        kafka=kafka,
        runner=settings.runner,
        local=settings.local,
        policy=settings.restart.policy(),
        base_environment=runner_base_environment(os.environ, log_level=settings.log_level, environment=settings.environment),
    )
    loop = ConsumerLoop(
        consumer=make_consumer(kafka, group_id=settings.local.consumer_group, **settings.consumer_overrides()),
        dlq_producer=producer,
        contracts={topic_name(Topic.TO_DEPLOY, kafka.topic_prefix): DeployCommand},
        handler=LocalDeployer(supervisor),
        stop=stop,
        poll_timeout_seconds=settings.local.tick_seconds,
    )
    with single_instance(engine, settings.database.schema_name):
        try:
            supervisor.resume()
            loop.consumer.subscribe(list(loop.contracts))
            log.info("local runtime running", extra={"runner_command": settings.local.runner_command[:3]})
            while not stop.is_set():
                loop.run_once()
                supervisor.tick()
        finally:
            supervisor.shutdown()
            loop.consumer.close()
            producer.flush(10)
