"""send_to_dlq: why in the headers, and a value too large to copy cut so its batch can still commit."""

from __future__ import annotations

from typing import Any

from vap_common.kafka import DLQ_MAX_VALUE_BYTES, send_to_dlq


class Message:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def topic(self) -> str:
        return "t.results"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return self._value


class Producer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, **record: Any) -> None:
        self.sent.append({"topic": topic, **record})


def test_a_rejected_message_is_copied_with_where_it_came_from_and_why() -> None:
    producer = Producer()
    send_to_dlq(producer, Message(b"{}"), error="bad")  # type: ignore[arg-type]
    (record,) = producer.sent
    assert (record["topic"], record["key"], record["value"]) == ("t.results.dlq", b"k", b"{}")
    assert record["headers"] == {
        "dlq.original.topic": "t.results",
        "dlq.original.partition": "2",
        "dlq.original.offset": "41",
        "dlq.error": "bad",
        "dlq.attempts": "1",
    }


def test_a_value_larger_than_the_producer_may_send_is_cut_and_its_size_recorded() -> None:
    """A 1.16 MB forged result (lz4 let the broker take it) wedged the inbox: its copy was refused
    with MSG_SIZE_TOO_LARGE on every retry and the batch was never committed."""
    producer = Producer()
    big = b"x" * 1_160_000
    send_to_dlq(producer, Message(big), error="too many detections")  # type: ignore[arg-type]
    (record,) = producer.sent
    assert record["value"] == big[:DLQ_MAX_VALUE_BYTES] and DLQ_MAX_VALUE_BYTES < 1_000_000
    assert record["headers"]["dlq.original.bytes"] == "1160000"
