"""Small helpers shared by integration tests (real Kafka)."""

from __future__ import annotations

import uuid

from confluent_kafka import Message

from vap_common.kafka import make_consumer
from vap_common.settings import KafkaSettings


def consume(settings: KafkaSettings, topic: str, *, expected: int, timeout_seconds: float = 30.0, group: str | None = None) -> list[Message]:
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
