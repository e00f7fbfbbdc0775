"""vap_common.kafka.deliver and wait_for_deliveries: a future per message, ended by its delivery report
(the producer is faked; the relay, the operator and the runner publish through these two)."""

from __future__ import annotations

import threading
import time
from typing import Any

from confluent_kafka import KafkaError

from vap_common.kafka import acknowledged, deliver, wait_for_deliveries


class FakeProducer:
    """Keeps each produce's callback; ``flush`` serves them with ``answer(key)`` unless told to hold them."""

    def __init__(self, answer: dict[str, KafkaError | None], *, hold: bool = False) -> None:
        self.answer, self.hold = answer, hold
        self.pending: list[tuple[str, Any]] = []
        self.flushes = 0

    def produce(self, topic: str, *, key: str, value: bytes, headers: Any, on_delivery: Any) -> None:
        self.pending.append((key, on_delivery))

    def flush(self, timeout: float) -> int:
        self.flushes += 1
        if self.hold:
            time.sleep(timeout)
            return len(self.pending)
        for key, on_delivery in self.pending:
            on_delivery(self.answer[key], None)
        self.pending.clear()
        return 0


def test_each_message_gets_its_own_answer() -> None:
    refused = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    producer = FakeProducer({"a": None, "b": refused})
    answers = [deliver(producer, "t", key=key, value=b"v") for key in ("a", "b")]  # type: ignore[arg-type]
    assert not any(answer.done() for answer in answers)
    wait_for_deliveries(producer, answers, timeout_seconds=5)  # type: ignore[arg-type]
    assert [acknowledged(answer) for answer in answers] == [True, False]
    failure = answers[1].exception()
    assert failure is not None and failure.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_unanswered_messages_stay_pending_after_the_timeout_and_the_beat_runs_between_steps() -> None:
    producer = FakeProducer({}, hold=True)
    answer = deliver(producer, "t", key="a", value=b"v")  # type: ignore[arg-type]
    beats: list[float] = []
    started = time.monotonic()
    wait_for_deliveries(
        producer,  # type: ignore[arg-type]
        [answer],
        timeout_seconds=0.3,
        step_seconds=0.1,
        between_steps=lambda: beats.append(time.monotonic()),
    )
    assert not answer.done() and not acknowledged(answer)
    assert 0.3 <= time.monotonic() - started < 2.0
    assert len(beats) == producer.flushes >= 2


def test_a_report_served_by_another_thread_is_waited_for() -> None:
    """The operator's producer is shared: another thread's flush may be running our callback as ours
    returns with nothing queued."""
    producer = FakeProducer({})
    answer = deliver(producer, "t", key="a", value=b"v")  # type: ignore[arg-type]
    (_, on_delivery) = producer.pending.pop()
    threading.Timer(0.2, on_delivery, args=(None, None)).start()
    wait_for_deliveries(producer, [answer], timeout_seconds=5)  # type: ignore[arg-type]
    assert acknowledged(answer)
