"""The local runtime's main loop: to_deploy -> Supervisor, in the main thread, until ``stop`` is set.

Neither PostgreSQL nor Kafka going away stops it: the consumer loop retries its batch, the supervisor
queues what it must write, and a failed step is retried after a backoff. It exits only when asked to
(runners are stopped first) or when its consumer is wedged or broken (ConsumerFailed: the runners are left
running for the next runtime to adopt).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

from sqlalchemy import Engine, text

from vap_common.consuming import Accepted, ConsumerFailed, ConsumerLoop, Rejected
from vap_common.contracts import DeployCommand
from vap_common.db import is_permanent_error, make_session_factory
from vap_common.kafka import make_consumer, make_producer
from vap_common.topics import Topic, topic_name
from vap_operator.local.supervisor import Supervisor, runner_base_environment
from vap_operator.publishing import Publisher
from vap_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

# Longest pause between two attempts of a main-loop step that failed (PostgreSQL or Kafka away).
_MAX_STEP_BACKOFF_SECONDS = 5.0
# Status events wait at most this long for the broker in one attempt: the loop must keep reaping.
_PUBLISH_TIMEOUT_SECONDS = 5.0


class LocalDeployer:
    """ConsumerLoop handler for to_deploy (local runtime): a deploy queues the runner (the workers row
    is the durable truth, resumed after a restart), a stop signals it; an unknown scenario is refused."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def __call__(self, batch: Sequence[Accepted[DeployCommand]]) -> Sequence[Rejected]:
        rejected: list[Rejected] = []
        for item in batch:
            command = item.value
            if command.action == "stop":
                self._supervisor.stop(command)
            elif (refusal := self._supervisor.deploy(command)) is not None:
                rejected.append(Rejected(item.message, refusal))
        return rejected


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
            try:
                connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})
            except Exception:  # noqa: BLE001 - the connection (and with it the lock) is already gone
                log.warning("could not release the runtime lock; it went with its connection")


def default_state_dir(schema_name: str | None) -> Path:
    return Path(tempfile.gettempdir()) / f"vap-local-runtime-{schema_name or 'public'}"


def run_local(settings: OperatorSettings, engine: Engine, stop: threading.Event, crashed: threading.Event) -> None:
    """Run the local runtime until ``stop`` is set; runners are stopped on the way out unless
    ``crashed`` is set (then they keep running, for the next runtime to adopt)."""
    kafka = settings.kafka
    producer = make_producer(kafka)
    capacity = settings.local.resolved_capacity(
        cpu_count=os.cpu_count() or 1, memory_bytes=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    )
    supervisor = Supervisor(
        sessions=make_session_factory(engine),
        publisher=Publisher(producer, topic_prefix=kafka.topic_prefix, flush_timeout_seconds=_PUBLISH_TIMEOUT_SECONDS),
        kafka=kafka,
        runner=settings.runner,
        local=settings.local,
        policy=settings.restart.policy(),
        camera_policy=settings.camera_policy.policy(platform=settings.platform_servers()),
        base_environment=runner_base_environment(
            os.environ, log_level=settings.log_level, environment=settings.environment
        ),
        capacity=capacity,
        keyring=settings.camera_keyring(),
        state_dir=settings.local.state_dir or default_state_dir(settings.database.schema_name),
        heartbeat_seconds=settings.heartbeat_seconds,
    )
    loop = ConsumerLoop(
        new_consumer=partial(
            make_consumer, kafka, group_id=settings.local.consumer_group, **settings.consumer_overrides()
        ),
        dlq_producer=producer,
        contracts={topic_name(Topic.TO_DEPLOY, kafka.topic_prefix): DeployCommand},
        handler=LocalDeployer(supervisor),
        stop=stop,
        poll_timeout_seconds=settings.local.tick_seconds,
        is_permanent=is_permanent_error,
        stall_timeout_seconds=settings.consumer_stall_timeout_seconds,
    )
    with ExitStack() as lock:
        _wait_for_the_lock(lock, engine, settings.database.schema_name, stop)
        try:
            _resume_when_reachable(supervisor, stop)
            loop.consumer.subscribe(list(loop.contracts))
            log.info(
                "local runtime running",
                extra={"runner_command": settings.local.runner_command[:3], "capacity": capacity},
            )
            failures = 0
            while not stop.is_set():
                try:
                    loop.run_once()
                    supervisor.tick()
                    failures = 0
                except ConsumerFailed:
                    crashed.set()
                    raise
                except Exception:
                    failures += 1
                    log.exception("local runtime step failed; retrying", extra={"failures": failures})
                    stop.wait(min(0.2 * 2 ** (failures - 1), _MAX_STEP_BACKOFF_SECONDS))
        finally:
            if crashed.is_set():
                log.warning(
                    "runtime crashed: its runners keep running for the next runtime to adopt",
                    extra={"runners": len(supervisor.running())},
                )
            else:
                supervisor.shutdown()
            loop.consumer.close()
            producer.flush(10)


def _wait_for_the_lock(stack: ExitStack, engine: Engine, schema_name: str | None, stop: threading.Event) -> None:
    """Enter single_instance() on ``stack``, waiting for PostgreSQL if it is away at start (another
    runtime holding the lock: AnotherRuntimeRunning at once)."""
    delay = 0.5
    while True:
        try:
            stack.enter_context(single_instance(engine, schema_name))
            return
        except AnotherRuntimeRunning:
            raise
        except Exception as error:
            if stop.is_set():
                raise
            log.warning(
                "PostgreSQL unreachable at start; waiting",
                extra={"retry_in_seconds": delay, "error": type(error).__name__},
            )
            stop.wait(delay)
            delay = min(delay * 2, _MAX_STEP_BACKOFF_SECONDS)


def _resume_when_reachable(supervisor: Supervisor, stop: threading.Event) -> None:
    delay = 0.5
    while not stop.is_set():
        try:
            supervisor.resume()
            return
        except Exception as error:  # noqa: BLE001 - PostgreSQL away: the runners it would adopt keep running
            log.warning(
                "cannot resume the runners yet; retrying",
                extra={"retry_in_seconds": delay, "error": type(error).__name__},
            )
            stop.wait(delay)
            delay = min(delay * 2, _MAX_STEP_BACKOFF_SECONDS)
