"""Producing scenario_status and to_deploy messages, acknowledged by the broker before returning."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias
from uuid import UUID

from confluent_kafka import Producer
from prometheus_client import Counter

from vap_common.contracts import DeployCommand, StatusEvent, encode
from vap_common.kafka import acknowledged, deliver, wait_for_deliveries
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
        answers = [
            deliver(self._producer, self._topics[type(message)], key=str(message.scenario_uuid), value=encode(message))
            for message in messages
        ]
        for message in messages:
            if isinstance(message, StatusEvent):
                STATUS_PUBLISHED.labels(message.status.value).inc()
        wait_for_deliveries(self._producer, answers, timeout_seconds=self._flush_timeout_seconds)
        failed = [answer for answer in answers if not acknowledged(answer)]
        if failed:
            errors = [str(answer.exception()) for answer in failed[:3] if answer.done()]
            raise PublishError(f"{len(failed)} of {len(messages)} message(s) not acknowledged: {errors}")
