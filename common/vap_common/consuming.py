"""The consume → decode → handle → commit loop every VAP consumer runs.

Guarantees, in this order, for each batch polled from Kafka:
1. values that do not parse as their topic's contract go to ``<topic>.dlq`` (headers say why) and the
   DLQ producer is flushed, so a rejected message is never lost;
2. the handler makes the effect of the accepted messages durable (e.g. commits to PostgreSQL) and may
   reject more messages, which also go to the DLQ;
3. only then are the batch's offsets committed. A crash anywhere before 3 redelivers the batch, so
   handlers must be idempotent.

Bad messages and bad luck are told apart (arroyo's line):
- a handler error that ``is_permanent`` calls permanent (the database refuses the value for good) is
  narrowed down by handling the batch in halves until the one message it is about goes to the DLQ;
  the rest of the batch is stored as usual;
- any other error is transient: nothing is committed, the consumer seeks back to the batch's first
  offsets and tries again after a backoff. It keeps polling meanwhile (a wait never outlasts the
  group's poll interval), so it keeps its partitions, and order is kept: nothing is skipped.
Offsets are committed asynchronously and never retried: a commit that fails (partitions lost to a
rebalance, the group's coordinator gone or wedged after a broker froze) is counted and dropped by the
consumer's commit callback (``vap_common.kafka``). The effect is already durable, so the worst case is
a redelivery, which the handlers absorb; a synchronous commit would block the loop, and with it the
stall watchdog, for as long as a wedged coordinator does not answer.

A fatal consumer error (a static member fenced when its join was lost with a killed coordinator)
replaces the consumer in place with a new one from ``new_consumer``; the batch it came with is read
again. A second one within ``_RENEWAL_INTERVAL_SECONDS`` (another live process with the same
group.instance.id) raises :class:`ConsumerFailed` instead, so two processes do not fence each other
forever.

A consumer that sees messages waiting on its partitions while it takes none for
``stall_timeout_seconds`` raises :class:`ConsumerStalled`: the process exits and its supervisor
(supervisord, Kubernetes) restarts it, instead of the process looping silently.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Counter

from vap_common.contracts import Decodable, InvalidMessage, decode
from vap_common.kafka import COMMITS_DROPPED, send_to_dlq

log = logging.getLogger(__name__)

MESSAGES_REJECTED = Counter("vap_messages_rejected_total", "Messages sent to a dead-letter topic", ["topic"])
MESSAGES_CONSUMED = Counter("vap_messages_consumed_total", "Messages consumed and handled", ["topic"])
BATCHES_RETRIED = Counter(
    "vap_consumer_batches_retried_total", "Batches whose handling failed and is retried", ["topic"]
)
CONSUMERS_RENEWED = Counter("vap_consumer_renewed_total", "Consumers replaced in place after a fatal consumer error")


PayloadT = TypeVar("PayloadT")


@dataclass(frozen=True)
class Accepted(Generic[PayloadT]):
    """A consumed message and its value parsed by its topic's contract."""

    message: Message
    value: PayloadT


@dataclass(frozen=True)
class Rejected:
    """A message the handler refuses, and why (it goes to the dead-letter topic)."""

    message: Message
    error: str


class ConsumerFailed(RuntimeError):
    """The consumer cannot go on in this process (its supervisor restarts the process)."""


class ConsumerStalled(ConsumerFailed):
    """Messages wait on the consumer's partitions but it has taken none for too long."""


# Takes a batch in consumption order and returns the messages it refuses (the rest are done).
Handler = Callable[[Sequence[Accepted[PayloadT]]], Sequence[Rejected]]

_BROKER_QUERY_SECONDS = 5.0
_RENEWAL_INTERVAL_SECONDS = 60.0


def never_permanent(_error: BaseException) -> bool:
    return False


@dataclass
class ConsumerLoop(Generic[PayloadT]):
    """Runs ``handler`` over batches from a consumer made by ``new_consumer`` until ``stop`` is set; the
    handler gets the values as parsed by each topic's contract (``PayloadT``: their union)."""

    new_consumer: Callable[[], Consumer]
    dlq_producer: Producer
    contracts: Mapping[str, type[PayloadT]]  # broker topic name -> contract of its values
    handler: Handler[PayloadT]
    stop: threading.Event = field(default_factory=threading.Event)
    batch_size: int = 500
    poll_timeout_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    # Which handler errors are about the message, not the moment (e.g. vap_common.db.is_permanent_error).
    is_permanent: Callable[[BaseException], bool] = never_permanent
    stall_timeout_seconds: float = 60.0
    # Longest wait for a started batch to fill (see _poll).
    batch_linger_seconds: float = 0.02
    # How often an idle consumer asks the broker whether messages wait for it.
    progress_check_seconds: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _retry_at: float = 0.0
    _failures: int = 0
    _took_since_check: bool = False
    _next_check: float = 0.0
    _stuck: dict[tuple[str, int], int] = field(default_factory=dict)  # partition -> committed offset seen waiting
    _stuck_since: float | None = None
    _last_committed: dict[tuple[str, int], int] = field(default_factory=dict)
    _renewed_at: float | None = None
    consumer: Consumer = field(init=False)

    def __post_init__(self) -> None:
        self.consumer = self.new_consumer()

    def run(self) -> None:
        self.consumer.subscribe(list(self.contracts))
        while not self.stop.is_set():
            self.run_once()

    def run_once(self) -> int:
        """Poll one batch and process it completely; returns how many messages it held (0 when the
        batch failed and will be read again).

        While backing off after a failed batch it only waits (at most ``poll_timeout_seconds``), so a
        caller that runs other work between calls (the local runtime) is never blocked for long.
        """
        wait = self._retry_at - self.clock()
        if wait > 0:
            self.stop.wait(min(wait, self.poll_timeout_seconds))
            return 0
        messages = self._poll()
        if any(message.error() is not None for message in messages):  # rare: filter them out only then
            fatal = next((message.error() for message in messages if _is_fatal(message)), None)
            if fatal is not None:
                self._renew(fatal)
                return 0
            messages = [message for message in messages if self._usable(message)]
        if not messages:
            self._check_progress()
            return 0
        self._took_since_check = True
        accepted: list[Accepted[PayloadT]] = []
        rejected: list[Rejected] = []
        for message in messages:
            try:
                contract = cast(Decodable, self.contracts[message.topic() or ""])
                accepted.append(Accepted(message, cast(PayloadT, decode(contract, message.value()))))
            except InvalidMessage as error:
                rejected.append(Rejected(message, str(error)))
        try:
            if accepted:
                rejected.extend(self._handle(accepted))
            self._dead_letter(rejected)
        except Exception:
            if self.stop.is_set():
                raise
            self._retry_later(messages)
            return 0
        self._failures = 0
        self._commit(messages)
        for topic, count in collections.Counter(item.message.topic() for item in accepted).items():
            MESSAGES_CONSUMED.labels(topic).inc(count)
        return len(messages)

    def _poll(self) -> list[Message]:
        """What has arrived, up to a batch, without waiting for a batch to fill: small batches (low
        latency) when messages trickle in, full ones when they queue up during the previous batch.

        ``consume(n, timeout)`` would wait for n messages or the whole timeout, so at low load every
        message would wait ``poll_timeout_seconds``; here only an idle consumer waits, for the first one.
        """
        messages: list[Message] = self.consumer.consume(self.batch_size, 0) or self.consumer.consume(
            1, self.poll_timeout_seconds
        )
        if messages and len(messages) < self.batch_size:
            # A short linger fills the batch when messages are queuing up (one transaction for many:
            # half the inbox's throughput without it) and adds at most that much latency when not.
            messages.extend(self.consumer.consume(self.batch_size - len(messages), self.batch_linger_seconds))
        return messages

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("kafka consumer error", extra={"error": str(error)})
        return False

    def _renew(self, error: KafkaError) -> None:
        """Replace a consumer that hit a fatal error by a new one subscribed to the same topics."""
        now = self.clock()
        if self._renewed_at is not None and now - self._renewed_at < _RENEWAL_INTERVAL_SECONDS:
            raise ConsumerFailed(
                f"fatal Kafka consumer error again {now - self._renewed_at:.0f}s after the last renewal: {error}"
            )
        log.warning("fatal Kafka consumer error; replacing the consumer", extra={"error": str(error)})
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as close_error:
            log.warning("closing the failed consumer failed", extra={"error": str(close_error)})
        self.consumer = self.new_consumer()
        self.consumer.subscribe(list(self.contracts))
        self._renewed_at = now
        self._stuck, self._stuck_since = {}, None
        CONSUMERS_RENEWED.inc()

    def _handle(self, accepted: Sequence[Accepted[PayloadT]]) -> list[Rejected]:
        """The handler's rejections; a permanent error is narrowed down to its message by halving."""
        try:
            return list(self.handler(accepted))
        except Exception as error:
            if not self.is_permanent(error):
                raise
            if len(accepted) == 1:
                reason = f"refused for good: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                log.warning(
                    "message refused for good by its handler",
                    extra={"topic": accepted[0].message.topic(), "error": reason},
                )
                return [Rejected(accepted[0].message, reason)]
            middle = len(accepted) // 2
            return self._handle(accepted[:middle]) + self._handle(accepted[middle:])

    def _retry_later(self, messages: Sequence[Message]) -> None:
        """Seek back to the batch's first offsets and wait before reading it again."""
        self._failures += 1
        delay = min(0.1 * 2 ** (self._failures - 1), self.max_backoff_seconds)
        log.exception(
            "batch failed; it will be read again",
            extra={"retry_in_seconds": round(delay, 3), "failures": self._failures},
        )
        for topic in {message.topic() for message in messages}:
            BATCHES_RETRIED.labels(topic).inc()
        for (topic, partition), offset in _first_offsets(messages).items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as error:
                # Not ours any more (a rebalance): its new owner starts from the last committed offset.
                log.warning(
                    "cannot seek back; the partition was reassigned",
                    extra={"topic": topic, "partition": partition, "error": str(error)},
                )
        self._retry_at = self.clock() + delay

    def _dead_letter(self, rejected: Sequence[Rejected]) -> None:
        if not rejected:
            return
        for item in rejected:
            send_to_dlq(self.dlq_producer, item.message, error=item.error)
            MESSAGES_REJECTED.labels(item.message.topic()).inc()
        if self.dlq_producer.flush(30) != 0:
            raise RuntimeError("dead-letter records not acknowledged; not committing the batch")

    def _commit(self, messages: Sequence[Message]) -> None:
        offsets = [
            TopicPartition(topic, partition, offset + 1)
            for (topic, partition), offset in _last_offsets(messages).items()
        ]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as error:  # refused before it was sent (e.g. no longer assigned)
            COMMITS_DROPPED.inc()
            log.warning("offset commit failed; the batch may be redelivered", extra={"error": str(error)})

    # --- liveness ---------------------------------------------------------------------------------

    def _check_progress(self) -> None:
        """Raise ConsumerStalled when messages wait, unmoved, while this consumer takes none."""
        now = self.clock()
        if now < self._next_check:
            return
        self._next_check = now + self.progress_check_seconds
        took, self._took_since_check = self._took_since_check, False
        waiting = None if took else self._waiting_partitions()
        if not waiting:  # took something, nothing waits, or the broker cannot tell: not stalled
            self._stuck, self._stuck_since = {}, None
            return
        unmoved = {partition: offset for partition, offset in waiting.items() if self._stuck.get(partition) == offset}
        if not unmoved:
            self._stuck, self._stuck_since = waiting, now
            return
        self._stuck = unmoved
        assert self._stuck_since is not None
        if now - self._stuck_since >= self.stall_timeout_seconds:
            shown = {f"{topic}[{partition}]": offset for (topic, partition), offset in sorted(unmoved.items())}
            raise ConsumerStalled(
                f"messages have waited {now - self._stuck_since:.0f}s at committed offsets {shown} "
                "while this consumer took none"
            )

    def _waiting_partitions(self) -> dict[tuple[str, int], int] | None:
        """Partitions of the subscribed topics whose committed offset is below their end (None: the
        brokers cannot be reached, so nothing can be told: an outage is not a stall).

        A consumer's own connections can stay wedged after a broker was frozen while the broker answers
        others: then a new client made by ``new_consumer`` (it never subscribes, so it joins no group)
        asks instead, and the wedged consumer is found stalled. The group coordinator may not answer
        while the brokers do: then the offsets committed at the last check that had them stand in.
        """
        try:
            return self._waiting_as_seen_by(self.consumer)
        except (KafkaException, KeyError) as error:
            log.debug("this consumer cannot tell whether messages wait", extra={"error": str(error)})
        probe = self.new_consumer()
        try:
            waiting = self._waiting_as_seen_by(probe)
        except (KafkaException, KeyError) as error:
            log.debug("the brokers cannot be reached", extra={"error": str(error)})
            return None
        finally:
            probe.close()
        log.warning("the brokers answer a new client but not this consumer", extra={"waiting": len(waiting)})
        return waiting

    def _waiting_as_seen_by(self, client: Consumer) -> dict[tuple[str, int], int]:
        partitions = [
            TopicPartition(topic, partition)
            for topic in self.contracts
            for partition in client.list_topics(topic, timeout=_BROKER_QUERY_SECONDS).topics[topic].partitions
        ]
        ends = {
            (p.topic, p.partition): client.get_watermark_offsets(p, timeout=_BROKER_QUERY_SECONDS, cached=False)
            for p in partitions
        }
        try:
            committed = {
                (p.topic, p.partition): p.offset for p in client.committed(partitions, timeout=_BROKER_QUERY_SECONDS)
            }
            self._last_committed = committed
        except KafkaException as error:
            log.debug(
                "the group coordinator does not answer; using the offsets committed last", extra={"error": str(error)}
            )
            committed = self._last_committed
        waiting: dict[tuple[str, int], int] = {}
        for key, (low, high) in ends.items():
            offset = committed.get(key, -1)
            start = offset if offset >= 0 else low
            if start < high:
                waiting[key] = start
        return waiting


def _is_fatal(message: Message) -> bool:
    """librdkafka reports a fenced static member as _FATAL without always setting fatal()."""
    error = message.error()
    return error is not None and (error.fatal() or error.code() == KafkaError._FATAL)


def _first_offsets(messages: Sequence[Message]) -> dict[tuple[str, int], int]:
    first: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic() or "", message.partition() or 0)
        first[key] = min(first.get(key, message.offset() or 0), message.offset() or 0)
    return first


def _last_offsets(messages: Sequence[Message]) -> dict[tuple[str, int], int]:
    """Each partition's last offset: a batch holds each partition's messages in offset order."""
    return {(message.topic() or "", message.partition() or 0): message.offset() or 0 for message in messages}
