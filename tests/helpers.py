"""Small helpers shared by the integration and end-to-end tests: polling, Kafka, processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from vap_common.camera_secrets import generate_key
from vap_common.kafka import make_consumer
from vap_common.settings import DatabaseSettings, KafkaSettings
from vap_common.topics import Topic, topic_name

T = TypeVar("T")

# The key that seals camera credentials in every platform a test starts (vap_common.camera_secrets).
CAMERA_KEYS = generate_key("test")

# pytest-xdist workers share the machine's cores, so alongside others the platform takes up to that many
# times longer to do anything: each wait for it to do something allows for that. A wait is about whether
# it happens at all; how fast it happens is measured in bench/.
WAIT_SCALE = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def patience(seconds: float) -> float:
    """How long to wait for what takes up to ``seconds`` with the machine to itself."""
    return seconds * WAIT_SCALE


def service_settings(database: DatabaseSettings, kafka: KafkaSettings, **extra: str) -> dict[str, str]:
    """The VAP_* settings that point a service (API, relay, inbox, operator) at one test's schema, topic
    prefix and consumer groups (the inbox prefixes its group itself, the operator's do not); ``extra``
    adds or overrides settings."""
    prefix = kafka.topic_prefix
    return {
        "VAP_ENVIRONMENT": "test",
        "VAP_DATABASE__URL": database.url,
        "VAP_DATABASE__SCHEMA_NAME": database.schema_name or "",
        "VAP_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VAP_KAFKA__TOPIC_PREFIX": prefix,
        "VAP_ORCHESTRATOR__CONSUMER_GROUP": f"{prefix}orchestrator",
        "VAP_KUBERNETES__CONSUMER_GROUP": f"{prefix}kubernetes",
        "VAP_LOCAL__CONSUMER_GROUP": f"{prefix}local",
        "VAP_CAMERA_KEYS": CAMERA_KEYS,
        **extra,
    }


def child_environment(settings: dict[str, str]) -> dict[str, str]:
    """A child process's whole environment: this one without its VAP_* variables, then ``settings``."""
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("VAP_")},
        "PYTHONUNBUFFERED": "1",
        **settings,
    }


# For tests that play the kubelet (they write the Pod status): the local stack's real scheduler and
# kubelet share the API server, and a nodeSelector no node has keeps them from scheduling such runner
# Pods, running them and overwriting the statuses the tests write.
UNSCHEDULED_RUNNERS = {"VAP_KUBERNETES__NODE_SELECTOR": json.dumps({"vap.local/kubelet": "played-by-the-test"})}


def wait_until(
    predicate: Callable[[], T], *, timeout_seconds: float = 30.0, what: str = "condition", interval_seconds: float = 0.1
) -> T:
    """Poll ``predicate`` until it returns something truthy, for up to ``patience(timeout_seconds)``;
    fail naming ``what`` (and the last value)."""
    allowed = patience(timeout_seconds)
    deadline = time.monotonic() + allowed
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {allowed:g} s waiting for {what}; last value: {value!r}")
        time.sleep(interval_seconds)


def consume(
    settings: KafkaSettings, topic: str, *, expected: int, timeout_seconds: float = 30.0, group: str | None = None
) -> list[Message]:
    """Read ``topic`` from the start until ``expected`` messages arrived or the time is up; commits."""
    consumer = make_consumer(settings, group_id=group or f"test-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    messages: list[Message] = []
    try:
        for _ in range(int(timeout_seconds)):
            for message in consumer.consume(num_messages=500, timeout=1.0):
                assert message.error() is None, message.error()
                messages.append(message)
            if len(messages) >= expected:
                break
        if messages:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return messages


class TopicReader:
    """A test's topic from its beginning (assigned partitions: no consumer group to join, so fast)."""

    def __init__(self, kafka: KafkaSettings, topic: Topic | str) -> None:
        self.name = topic_name(topic, kafka.topic_prefix) if isinstance(topic, Topic) else topic
        self._consumer = make_consumer(kafka, group_id=f"test-reader-{uuid.uuid4().hex[:8]}")
        # A topic created a moment ago may not be in this broker's metadata yet: then it has no
        # partitions, and a reader assigned none would read nothing, however long it waited.
        partitions = wait_until(
            lambda: self._consumer.list_topics(self.name, timeout=10).topics[self.name].partitions,
            timeout_seconds=30,
            what=f"the partitions of {self.name}",
        )
        self._partitions = [TopicPartition(self.name, partition) for partition in partitions]
        self._consumer.assign([TopicPartition(self.name, partition, OFFSET_BEGINNING) for partition in partitions])
        self.values: list[bytes] = []

    def poll(self, seconds: float = 0.5) -> list[bytes]:
        """Every value so far, after one wait of up to ``seconds`` for more."""
        for message in self._consumer.consume(num_messages=1000, timeout=seconds):
            assert message.error() is None, message.error()
            self.values.append(message.value())
        return self.values

    def read(self, *, until: Callable[[list[bytes]], bool] | None = None, timeout_seconds: float = 10.0) -> list[bytes]:
        """Every value so far, reading until ``until(values)`` holds (for up to ``patience(timeout_seconds)``)
        or, without ``until``, for ``timeout_seconds``: what arrives within them."""
        deadline = time.monotonic() + (timeout_seconds if until is None else patience(timeout_seconds))
        while not (until is not None and until(self.values)) and time.monotonic() < deadline:
            self.poll()
        return self.values

    def read_to_end(self, *, timeout_seconds: float = 30.0) -> list[bytes]:
        """Everything published so far: reads until each partition's position reaches its high watermark."""
        ends = {tp.partition: self._consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in self._partitions}
        deadline = time.monotonic() + patience(timeout_seconds)
        while True:
            positions = {tp.partition: tp.offset for tp in self._consumer.position(self._partitions)}
            if all(ends[p] == 0 or positions[p] >= ends[p] for p in ends):
                return self.values
            assert time.monotonic() < deadline, (
                f"could not read {self.name} to its end in {patience(timeout_seconds):g} s: {positions} of {ends}"
            )
            self.poll()

    def close(self) -> None:
        self._consumer.close()


def pids_with_env(marker: str) -> list[int]:
    """Live (not zombie) processes whose environment holds ``marker`` (e.g. VAP_SCENARIO_UUID=...)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                stat = (entry / "stat").read_text()
                if stat[stat.rindex(")") + 2] != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def pod_status_patch(
    phase: str, *, ready: bool = False, exit_code: int | None = None, message: str | None = None
) -> dict[str, Any]:
    """A Pod status as a kubelet would write it (nothing runs containers here)."""
    stamp = "2026-11-25T12:00:00Z"
    if exit_code is not None:
        state: dict[str, Any] = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": stamp,
                "finishedAt": stamp,
            }
        }
        if message:
            state["terminated"]["message"] = message
    elif phase == "Running":
        state = {"running": {"startedAt": stamp}}
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    return {
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": "runner",
                    "image": "vap-runner",
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 0,
                    "started": phase == "Running",
                    "state": state,
                }
            ],
        }
    }


def fail_if_processes_left(topic_prefix: str, *, after: str, timeout_seconds: float = 15.0) -> None:
    """Nothing a test started may survive it (services, runners, inference processes): every one
    carries the test's VAP_KAFKA__TOPIC_PREFIX. Waits ``timeout_seconds``, then kills what is left and
    fails the test naming it."""
    marker = f"VAP_KAFKA__TOPIC_PREFIX={topic_prefix}"
    deadline = time.monotonic() + timeout_seconds
    while (left := [pid for pid in pids_with_env(marker) if pid != os.getpid()]) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        described = [f"{pid}: {command_line(pid)}" for pid in left]
        kill_all(left)
        pytest.fail(f"processes of the test still alive after {after} (now killed): {described}")


class UntouchedPort:
    """A listening port nothing may connect to: ``connections()`` counts what did (the kernel completes
    a connection before anyone accepts it, so none is missed)."""

    def __init__(self, host: str) -> None:
        self._socket = socket.create_server((host, 0))
        self._socket.setblocking(False)
        self.port: int = self._socket.getsockname()[1]
        self._accepted = 0

    def connections(self) -> int:
        while True:
            try:
                connection, _ = self._socket.accept()
            except BlockingIOError:
                return self._accepted
            connection.close()
            self._accepted += 1

    def close(self) -> None:
        self._socket.close()
