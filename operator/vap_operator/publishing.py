"""Producing scenario_status and to_deploy messages, acknowledged by the broker before returning."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TypeAlias
from uuid import UUID

from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import Counter

from vap_common.contracts import DeployCommand, StatusEvent, encode
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.redact import redact_text
from vap_common.topics import Topic, topic_name

STATUS_PUBLISHED = Counter("vap_operator_status_events_total", "Scenario status events published", ["status"])

Outgoing: TypeAlias = StatusEvent | DeployCommand


class PublishError(RuntimeError):
    """The broker did not acknowledge every message (the caller retries; consumers are idempotent)."""


def status_event(
    scenario_uuid: UUID, status: ScenarioStatus, *, reason: FailureReason | None = None, message: str | None = None
) -> StatusEvent:
    """A StatusEvent whose message is masked (it may quote a camera URL) and fits the contract."""
    return StatusEvent(
        scenario_uuid=scenario_uuid,
        status=status,
        reason=reason,
        message=redact_text(message)[:2000] if message else None,
    )


class _Deliveries:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.acknowledged = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def done(self) -> bool:
        with self.lock:
            return self.acknowledged + len(self.errors) >= self.expected

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        with self.lock:
            if error is None:
                self.acknowledged += 1
            else:
                self.errors.append(f"{message.topic()}: {error}")


class Publisher:
    """Sends messages (key = scenario UUID) and waits for the broker's acks; safe to share across threads."""

    def __init__(self, producer: Producer, *, topic_prefix: str, flush_timeout_seconds: float = 30.0) -> None:
        self._producer = producer
        self._topics = {
            StatusEvent: topic_name(Topic.SCENARIO_STATUS, topic_prefix),
            DeployCommand: topic_name(Topic.TO_DEPLOY, topic_prefix),
        }
        self._flush_timeout_seconds = flush_timeout_seconds

    def send(self, messages: Sequence[Outgoing]) -> None:
        """Produce ``messages`` in order and return once all are acknowledged; raise PublishError otherwise."""
        if not messages:
            return
        deliveries = _Deliveries(len(messages))
        for message in messages:
            self._producer.produce(
                self._topics[type(message)],
                key=str(message.scenario_uuid),
                value=encode(message),
                on_delivery=deliveries,
            )
            if isinstance(message, StatusEvent):
                STATUS_PUBLISHED.labels(message.status.value).inc()
        deadline = time.monotonic() + self._flush_timeout_seconds
        self._producer.flush(self._flush_timeout_seconds)
        # Another thread's flush may be running our delivery callbacks right now: wait for the last one.
        while not deliveries.done() and time.monotonic() < deadline:
            self._producer.poll(0.01)
        with deliveries.lock:
            if deliveries.errors or deliveries.acknowledged != deliveries.expected:
                raise PublishError(
                    f"{deliveries.expected - deliveries.acknowledged} of {deliveries.expected} message(s) "
                    f"not acknowledged: {deliveries.errors[:3]}"
                )
