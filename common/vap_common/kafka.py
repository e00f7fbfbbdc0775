"""confluent-kafka factories with the platform's delivery settings, acknowledged producing, and the dead-letter
helper."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from prometheus_client import Counter

from vap_common.settings import KafkaSettings
from vap_common.topics import dlq_name

log = logging.getLogger(__name__)

# Header names on dead-letter records (DESIGN.md: original topic, partition, offset, error, attempts).
DLQ_HEADERS = ("dlq.original.topic", "dlq.original.partition", "dlq.original.offset", "dlq.error", "dlq.attempts")

COMMITS_DROPPED = Counter(
    "vap_consumer_commits_dropped_total", "Offset commits that failed and were given up (redelivery follows)"
)


def make_producer(settings: KafkaSettings, **overrides: Any) -> Producer:
    """An idempotent producer (``acks=all``): broker retries never duplicate within a session."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    config.update(overrides)
    return Producer(config)


def deliver(
    producer: Producer,
    topic: str,
    *,
    key: str | bytes,
    value: bytes,
    headers: dict[str, str | bytes | None] | None = None,
) -> Future[None]:
    """Produce one message; its future ends with the broker's answer: done once acknowledged, or failed
    with a KafkaException (``args[0]`` is the KafkaError). ``produce``'s own errors are raised at once."""
    answer: Future[None] = Future()

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is None:
            answer.set_result(None)
        else:
            answer.set_exception(KafkaException(error))

    producer.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery)
    return answer


def acknowledged(answer: Future[None]) -> bool:
    """The broker acknowledged the message (not failed, not still waiting)."""
    return answer.done() and answer.exception() is None


def wait_for_deliveries(
    producer: Producer,
    answers: Sequence[Future[None]],
    *,
    timeout_seconds: float,
    step_seconds: float = 0.5,
    between_steps: Callable[[], None] | None = None,
) -> None:
    """Serve ``producer``'s delivery reports until every answer is in, or ``timeout_seconds`` pass (the
    answers still pending then are the caller's to count as not acknowledged). ``between_steps`` runs
    before each flush of at most ``step_seconds`` (a liveness beat)."""
    deadline = time.monotonic() + timeout_seconds
    while not all(answer.done() for answer in answers) and (remaining := deadline - time.monotonic()) > 0:
        if between_steps is not None:
            between_steps()
        if producer.flush(min(remaining, step_seconds)) == 0:
            # Nothing is queued any more: each report was served, maybe by another thread that is
            # running our callbacks right now.
            wait(answers, timeout=max(0.0, min(deadline - time.monotonic(), 1.0)))
            return


def make_consumer(settings: KafkaSettings, *, group_id: str, **overrides: Any) -> Consumer:
    """A manual-commit consumer: callers commit only after the effect is durable.

    Cooperative rebalancing: when a member joins or leaves, only the partitions that move stop, the
    others keep being consumed. With ``settings.instance_id``, static membership (see KafkaSettings).
    """
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        "on_commit": _on_commit,
    }
    if settings.instance_id:
        config["group.instance.id"] = settings.instance_id
    config.update(overrides)
    return Consumer(config)


def _on_commit(error: KafkaError | None, partitions: list[TopicPartition]) -> None:
    """Outcome of an asynchronous offset commit (served by the consumer's next poll)."""
    failed = [p for p in partitions if p.error is not None]
    if error is None and not failed:
        return
    COMMITS_DROPPED.inc()
    log.warning(
        "offset commit failed; the batch may be redelivered",
        extra={
            "error": str(error or failed[0].error),
            "partitions": [f"{p.topic}[{p.partition}]" for p in failed or partitions],
        },
    )


def make_admin(settings: KafkaSettings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.bootstrap_servers})


def ensure_topics(
    admin: AdminClient, names: list[str], *, partitions: int = 3, timeout_seconds: float = 30.0
) -> list[str]:
    """Create the missing topics among ``names``; returns those it created. Safe to call repeatedly.

    Replicated on up to three brokers (as many as the cluster has): with three, one can fail and, with
    the brokers' min.insync.replicas=2 and acks=all, no acknowledged message is lost.
    """
    metadata = admin.list_topics(timeout=timeout_seconds)
    missing = [name for name in names if name not in metadata.topics]
    if not missing:
        return []
    replication = max(1, min(3, len(metadata.brokers)))
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=replication) for name in missing]
    )
    for future in futures.values():
        try:
            future.result(timeout=timeout_seconds)
        except KafkaException as error:
            if error.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    return missing


# Largest value copied whole to a dead-letter topic: under the producer's default message.max.bytes
# (1,000,000), which a value the broker accepted compressed (a forged result) can exceed.
DLQ_MAX_VALUE_BYTES = 512 * 1024


def send_to_dlq(producer: Producer, message: Message, *, error: str, attempts: int = 1) -> None:
    """Copy ``message`` to ``<topic>.dlq`` with why it was rejected in the headers.

    A value over DLQ_MAX_VALUE_BYTES is cut to that size (header ``dlq.original.bytes`` gives its
    size; topic, partition and offset point at the original): a message too large to copy must not
    keep its batch from being committed. The caller flushes before committing the original offset,
    so a rejected message is never lost.
    """
    topic = message.topic() or ""
    value = message.value()
    values = (topic, str(message.partition()), str(message.offset()), error[:1000], str(attempts))
    headers: dict[str, str | bytes | None] = dict(zip(DLQ_HEADERS, values, strict=True))
    if value is not None and len(value) > DLQ_MAX_VALUE_BYTES:
        headers["dlq.original.bytes"] = str(len(value))
        value = value[:DLQ_MAX_VALUE_BYTES]
    producer.produce(dlq_name(topic), key=message.key(), value=value, headers=headers)
    log.warning(
        "message sent to dead-letter topic",
        extra={"topic": message.topic(), "offset": message.offset(), "error": error},
    )
