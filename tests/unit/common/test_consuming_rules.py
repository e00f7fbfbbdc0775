"""ConsumerLoop's rules with a scripted stand-in consumer (one module, no broker): transient errors
seek back and retry, permanent ones are narrowed down to their message, commits are never retried
forever, a fatal consumer error replaces the consumer, and a consumer that takes nothing while messages
wait unmoved raises ConsumerStalled."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import REGISTRY

from vap_common.consuming import Accepted, ConsumerFailed, ConsumerLoop, ConsumerStalled, Rejected
from vap_common.contracts import StatusEvent, encode
from vap_common.db import is_permanent_error
from vap_common.kafka import _on_commit
from vap_common.lifecycle import ScenarioStatus

TOPIC = "scenario_status"


@dataclass
class FakeMessage:
    value_bytes: bytes
    offset_number: int
    partition_number: int = 0

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self.partition_number

    def offset(self) -> int:
        return self.offset_number

    def value(self) -> bytes:
        return self.value_bytes

    def key(self) -> bytes:
        return b"k"

    def headers(self) -> list[Any]:
        return []


@dataclass
class FakeConsumer:
    """Serves a log of messages from a position; records seeks and commits."""

    log: list[FakeMessage]
    position: int = 0
    commit_errors: list[int] = field(default_factory=list)  # KafkaError codes raised by the next commits
    commits: list[list[tuple[int, int]]] = field(default_factory=list)
    seeks: list[int] = field(default_factory=list)
    committed_offset: int = -1001  # OFFSET_INVALID: nothing committed yet
    high_watermark: int | None = None
    subscribed: list[str] = field(default_factory=list)
    closed: bool = False

    def subscribe(self, topics: list[str]) -> None:
        self.subscribed = topics

    def close(self) -> None:
        self.closed = True

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        batch = self.log[self.position : self.position + num_messages]
        self.position += len(batch)
        return batch

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append(partition.offset)
        self.position = partition.offset

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert asynchronous, "a synchronous commit blocks the loop while the coordinator does not answer"
        if self.commit_errors:
            raise KafkaException(KafkaError(self.commit_errors.pop(0)))
        self.commits.append([(tp.partition, tp.offset) for tp in offsets])

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(topics={TOPIC: SimpleNamespace(partitions={0: None})})

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, 0, self.committed_offset)]

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float, cached: bool) -> tuple[int, int]:
        return 0, len(self.log) if self.high_watermark is None else self.high_watermark


class FakeProducer:
    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes, dict[str, Any]]] = []

    def produce(self, topic: str, *, key: bytes, value: bytes, headers: dict[str, Any]) -> None:
        self.produced.append((topic, value, headers))

    def flush(self, timeout: float) -> int:
        return 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def events(count: int) -> list[FakeMessage]:
    scenario = uuid.uuid4()
    return [
        FakeMessage(
            encode(StatusEvent(scenario_uuid=scenario, status=ScenarioStatus.ACTIVE, message=f"m{index}")), index
        )
        for index in range(count)
    ]


def make_loop(
    consumer: FakeConsumer | Callable[[], FakeConsumer], handler: Any, clock: Clock | None = None, **options: Any
) -> tuple[ConsumerLoop, FakeProducer]:
    producer = FakeProducer()
    loop = ConsumerLoop(
        new_consumer=consumer if callable(consumer) else lambda: consumer,  # type: ignore[arg-type,return-value]
        dlq_producer=producer,  # type: ignore[arg-type]
        contracts={TOPIC: StatusEvent},
        handler=handler,
        stop=threading.Event(),
        batch_size=10,
        poll_timeout_seconds=0.001,
        clock=clock or Clock(),
        **options,
    )
    return loop, producer


class Refused(Exception):
    """Stands in for a database error about the data (SQLSTATE class 22)."""

    pgcode = "22021"


def test_a_transient_handler_error_seeks_back_commits_nothing_and_the_batch_is_handled_again() -> None:
    consumer = FakeConsumer(events(3))
    calls: list[int] = []

    def handler(batch: Sequence[Accepted]) -> Sequence[Rejected]:
        calls.append(len(batch))
        if len(calls) == 1:
            raise ConnectionError("database away")
        return []

    clock = Clock()
    loop, _ = make_loop(consumer, handler, clock)
    assert loop.run_once() == 0
    assert consumer.seeks == [0] and consumer.commits == []
    assert loop.run_once() == 0  # still backing off: only waits, polls nothing
    clock.now += 1
    assert loop.run_once() == 3
    assert calls == [3, 3] and consumer.commits == [[(0, 3)]]


def test_a_permanent_error_is_narrowed_down_to_its_message_which_goes_to_the_dead_letter_topic() -> None:
    consumer = FakeConsumer(events(7))
    poison = consumer.log[4].value_bytes
    stored: list[bytes] = []

    def handler(batch: Sequence[Accepted]) -> Sequence[Rejected]:
        if any(item.message.value() == poison for item in batch):
            raise Refused("invalid byte sequence")
        stored.extend(item.message.value() for item in batch)
        return []

    loop, producer = make_loop(consumer, handler, is_permanent=is_permanent_error)
    assert loop.run_once() == 7
    assert stored == [message.value_bytes for message in consumer.log if message.value_bytes != poison]
    assert [(topic, value) for topic, value, _ in producer.produced] == [(f"{TOPIC}.dlq", poison)]
    assert "refused for good" in producer.produced[0][2]["dlq.error"]
    assert consumer.commits == [[(0, 7)]]


def test_a_permanent_error_is_not_mistaken_for_a_transient_one_or_the_other_way_round() -> None:
    class ConnectionLost(Exception):
        pgcode = "08006"

    wrapped = RuntimeError("statement failed")
    wrapped.__cause__ = Refused("bad")
    assert is_permanent_error(Refused("bad")) and is_permanent_error(wrapped)
    assert is_permanent_error(ValueError("A string literal cannot contain NUL (0x00) characters."))
    assert not is_permanent_error(ConnectionLost("server closed the connection"))
    assert not is_permanent_error(ConnectionError("refused"))


@pytest.mark.parametrize("code", [KafkaError._ASSIGNMENT_LOST, KafkaError.UNKNOWN_MEMBER_ID, KafkaError._STATE])
def test_a_commit_refused_at_once_is_counted_and_dropped_and_consuming_goes_on(code: int) -> None:
    consumer = FakeConsumer(events(4), commit_errors=[code])
    consumer.log = consumer.log[:2]
    handled: list[int] = []
    loop, _ = make_loop(consumer, lambda batch: handled.append(len(batch)) or [])
    dropped = REGISTRY.get_sample_value("vap_consumer_commits_dropped_total") or 0.0
    assert loop.run_once() == 2
    assert REGISTRY.get_sample_value("vap_consumer_commits_dropped_total") == dropped + 1
    consumer.log += events(2)
    for message, offset in zip(consumer.log[2:], (2, 3), strict=True):
        message.offset_number = offset
    assert loop.run_once() == 2  # the loop did not stay in the failed commit
    assert handled == [2, 2] and consumer.commits == [[(0, 4)]]


def test_an_asynchronous_commit_that_fails_later_is_counted_by_the_commit_callback() -> None:
    dropped = REGISTRY.get_sample_value("vap_consumer_commits_dropped_total") or 0.0
    _on_commit(None, [TopicPartition(TOPIC, 0, 5)])
    assert REGISTRY.get_sample_value("vap_consumer_commits_dropped_total") == dropped
    _on_commit(KafkaError(KafkaError.REQUEST_TIMED_OUT), [TopicPartition(TOPIC, 0, 5)])
    failed = SimpleNamespace(topic=TOPIC, partition=1, offset=7, error=KafkaError(KafkaError.UNKNOWN_MEMBER_ID))
    _on_commit(None, [failed])  # type: ignore[list-item]
    assert REGISTRY.get_sample_value("vap_consumer_commits_dropped_total") == dropped + 2


def test_a_consumer_that_takes_nothing_while_messages_wait_unmoved_raises_stalled() -> None:
    consumer = FakeConsumer([], committed_offset=5, high_watermark=9)  # 4 messages wait; none is served
    clock = Clock()
    loop, _ = make_loop(consumer, lambda batch: [], clock, stall_timeout_seconds=60, progress_check_seconds=5)
    for _ in range(12):
        loop.run_once()
        clock.now += 5
    with pytest.raises(ConsumerStalled, match="waited 60s"):
        loop.run_once()


def test_waiting_messages_that_someone_else_takes_or_an_idle_topic_never_count_as_a_stall() -> None:
    consumer = FakeConsumer([], committed_offset=5, high_watermark=9)
    clock = Clock()
    loop, _ = make_loop(consumer, lambda batch: [], clock, stall_timeout_seconds=60, progress_check_seconds=5)
    for _ in range(40):  # another member of the group makes progress: the committed offset moves
        loop.run_once()
        consumer.committed_offset += 1
        consumer.high_watermark = consumer.committed_offset + 4
        clock.now += 5
    consumer.high_watermark = consumer.committed_offset  # nothing waits
    for _ in range(40):
        loop.run_once()
        clock.now += 5


def test_a_consumer_whose_group_coordinator_stopped_answering_still_raises_stalled() -> None:
    """After a frozen broker the inbox wedged while committed() failed on every check: the watchdog
    took that for an outage and never fired. The brokers answer, so the offsets seen last stand in."""
    consumer = FakeConsumer([], committed_offset=5, high_watermark=9)
    clock = Clock()
    loop, _ = make_loop(consumer, lambda batch: [], clock, stall_timeout_seconds=60, progress_check_seconds=5)
    loop.run_once()  # one check that had the committed offsets
    clock.now += 5

    def coordinator_gone(partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))

    consumer.committed = coordinator_gone  # type: ignore[method-assign]
    with pytest.raises(ConsumerStalled, match="waited 60s"):
        for _ in range(20):
            loop.run_once()
            clock.now += 5


def wedged(consumer: FakeConsumer) -> FakeConsumer:
    """The consumer's own connections time out on every broker query."""

    def timed_out(*_args: Any, **_kwargs: Any) -> Any:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))

    consumer.list_topics = timed_out  # type: ignore[method-assign]
    return consumer


def test_a_consumer_wedged_while_the_brokers_answer_a_new_client_raises_stalled() -> None:
    """After a frozen broker was thawed the inbox's own connections stayed wedged: its broker queries
    failed, which read as an outage, so the watchdog never fired. A new client asks instead."""
    own = wedged(FakeConsumer([]))
    made: list[FakeConsumer] = []  # the loop's consumer, then each new client it asks

    def new_consumer() -> FakeConsumer:
        made.append(own if not made else FakeConsumer([], committed_offset=5, high_watermark=9))
        return made[-1]

    clock = Clock()
    loop, _ = make_loop(new_consumer, lambda batch: [], clock, stall_timeout_seconds=60, progress_check_seconds=5)
    with pytest.raises(ConsumerStalled, match="waited 60s"):
        for _ in range(20):
            loop.run_once()
            clock.now += 5
    probes = made[1:]
    assert probes and all(probe.closed and probe.subscribed == [] for probe in probes)  # none joins the group
    assert loop.consumer is own


def test_a_consumer_that_cannot_reach_brokers_no_new_client_reaches_either_is_not_stalled() -> None:
    """An outage: nobody can tell whether messages wait, and restarting the process would not help."""
    clock = Clock()
    loop, _ = make_loop(
        lambda: wedged(FakeConsumer([], committed_offset=5, high_watermark=9)),
        lambda batch: [],
        clock,
        stall_timeout_seconds=60,
        progress_check_seconds=5,
    )
    for _ in range(40):
        loop.run_once()
        clock.now += 5


class FatalMessage(FakeMessage):
    def error(self) -> Any:  # type: ignore[override]
        return KafkaError(KafkaError._FATAL, "Static consumer fenced by other consumer with same group.instance.id")


def test_a_fatal_consumer_error_replaces_the_consumer_and_its_batch_is_read_again() -> None:
    """After a broker kill a static member whose join was lost with the coordinator gets fenced by
    itself: a new consumer under the same group.instance.id takes over, without a process restart."""
    first = FakeConsumer([*events(2), FatalMessage(b"", 2)])
    second = FakeConsumer(events(3))
    consumers = iter([first, second])
    handled: list[int] = []
    clock = Clock()
    loop, _ = make_loop(lambda: next(consumers), lambda batch: handled.append(len(batch)) or [], clock)
    assert loop.run_once() == 0  # nothing of the fenced consumer's batch is handled or committed
    assert first.closed and first.commits == [] and handled == []
    assert loop.consumer is second and second.subscribed == [TOPIC]
    assert loop.run_once() == 3 and handled == [3] and second.commits == [[(0, 3)]]


def test_fatal_errors_in_a_row_end_the_loop_for_the_supervisor_to_restart_the_process() -> None:
    """Two live processes with one group.instance.id would fence each other forever."""
    clock = Clock()
    loop, _ = make_loop(lambda: FakeConsumer([FatalMessage(b"", 0)]), lambda batch: [], clock)
    assert loop.run_once() == 0
    clock.now += 30
    with pytest.raises(ConsumerFailed, match="fenced"):
        loop.run_once()
