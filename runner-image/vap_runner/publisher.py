"""Publishes frame results and status events to Kafka (key = scenario UUID)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from uuid import UUID

from confluent_kafka import KafkaError, KafkaException, Message

from vap_common.contracts import StatusEvent, encode
from vap_common.kafka import make_producer
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, topic_name

log = logging.getLogger(__name__)

# How long one wait for room in the producer's queue lasts (the caller's liveness beat runs in between).
_POLL_SECONDS = 0.1


class DownstreamBlocked(Exception):
    """Kafka refused or did not acknowledge results for too long. Not the camera's fault."""


class Publisher:
    def __init__(self, *, kafka: KafkaSettings, scenario_uuid: UUID, blocked_timeout_seconds: float, linger_ms: int, on_wait: Callable[[], None]) -> None:
        # librdkafka gives up on a message after message.timeout.ms and reports it: that is our limit.
        # Its own log lines go through logging too, so they are JSON like ours (served by poll()).
        # linger.ms: results wait that long to go in one request; a flush() sends at once (status events).
        self._producer = make_producer(
            kafka, **{"message.timeout.ms": int(blocked_timeout_seconds * 1000), "linger.ms": linger_ms, "logger": logging.getLogger("librdkafka")}
        )
        self._results_topic = topic_name(Topic.RESULTS, kafka.topic_prefix)
        self._status_topic = topic_name(Topic.SCENARIO_STATUS, kafka.topic_prefix)
        self._scenario_uuid = scenario_uuid
        self._key = str(scenario_uuid).encode()
        self._blocked_timeout_seconds = blocked_timeout_seconds
        self._on_wait = on_wait
        self._delivery_error: str | None = None

    def publish_result(self, message: bytes) -> None:
        """Queue an encoded FrameResult; raise :class:`DownstreamBlocked` when Kafka has not taken results for too long."""
        self._raise_if_failed()
        deadline = time.monotonic() + self._blocked_timeout_seconds
        while True:
            try:
                self._producer.produce(self._results_topic, key=self._key, value=message, on_delivery=self._on_delivery)
                break
            except KafkaException as error:  # e.g. the topic does not exist
                raise DownstreamBlocked(f"Kafka refused a result: {error}") from error
            except BufferError:
                # The local queue is full: Kafka is slower than the detector or unreachable.
                if time.monotonic() > deadline:
                    raise DownstreamBlocked(f"Kafka took no result for {self._blocked_timeout_seconds:g} s (producer queue full)") from None
                self._on_wait()
                self._producer.poll(_POLL_SECONDS)
                self._raise_if_failed()

    def send_status(self, status: ScenarioStatus) -> None:
        """Queue a status event without waiting (delivered with the results, or by the final flush)."""
        try:
            self._producer.produce(self._status_topic, key=self._key, value=self._status_value(status), on_delivery=self._on_delivery)
        except (KafkaException, BufferError) as error:
            raise DownstreamBlocked(f"Kafka refused a status event: {error}") from error
        self._producer.poll(0)

    def publish_status(self, status: ScenarioStatus, *, reason: FailureReason | None = None, message: str | None = None, timeout_seconds: float) -> bool:
        """Send a status event and wait for the broker's ack; False if it was not acknowledged in time."""
        acknowledged: list[bool] = []
        try:
            self._producer.produce(
                self._status_topic,
                key=self._key,
                value=self._status_value(status, reason, message),
                on_delivery=lambda error, _: acknowledged.append(error is None),
            )
        except (KafkaException, BufferError) as error:
            log.error("Kafka refused a status event", extra={"status": status.value, "error": str(error)})
            return False
        self._producer.flush(timeout_seconds)
        delivered = acknowledged == [True]
        log.info("status published" if delivered else "status not acknowledged", extra={"status": status.value, "reason": reason and reason.value})
        return delivered

    def poll(self) -> None:
        """Serve delivery reports; raise :class:`DownstreamBlocked` if a result could not be delivered."""
        self._producer.poll(0)
        self._raise_if_failed()

    def flush(self, *, timeout_seconds: float) -> bool:
        """True when every queued message was acknowledged within ``timeout_seconds``."""
        remaining = self._producer.flush(timeout_seconds)
        return remaining == 0 and self._delivery_error is None

    def _status_value(self, status: ScenarioStatus, reason: FailureReason | None = None, message: str | None = None) -> bytes:
        return encode(StatusEvent(scenario_uuid=self._scenario_uuid, status=status, reason=reason, message=message))

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None and self._delivery_error is None:
            self._delivery_error = str(error)
            log.error("Kafka did not take a message", extra={"error": str(error)})

    def _raise_if_failed(self) -> None:
        if self._delivery_error is not None:
            raise DownstreamBlocked(f"Kafka did not acknowledge a result: {self._delivery_error}")
