"""The consume → decode → handle → commit loop every VAP consumer runs.

Guarantees, in this order, for each batch polled from Kafka:
1. values that do not parse as their topic's contract go to ``<topic>.dlq`` (headers say why) and the
   DLQ producer is flushed, so a rejected message is never lost;
2. the handler makes the effect of the accepted messages durable (e.g. commits to PostgreSQL) and may
   reject more messages, which also go to the DLQ;
3. only then are the batch's offsets committed. A crash anywhere before 3 redelivers the batch, so
   handlers must be idempotent.
A handler error is retried on the same batch with backoff (order is kept: nothing is skipped).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter
from pydantic import TypeAdapter

from vap_common.contracts import Contract, InvalidMessage, decode
from vap_common.kafka import send_to_dlq

log = logging.getLogger(__name__)

MESSAGES_REJECTED = Counter("vap_messages_rejected_total", "Messages sent to a dead-letter topic", ["topic"])
MESSAGES_CONSUMED = Counter("vap_messages_consumed_total", "Messages consumed and handled", ["topic"])


@dataclass(frozen=True)
class Accepted:
    """A consumed message and its parsed contract (a model, or a dict for a record contract)."""

    message: Message
    value: Any


@dataclass(frozen=True)
class Rejected:
    """A message the handler refuses, and why (it goes to the dead-letter topic)."""

    message: Message
    error: str


_COMMIT_LOST_TO_REBALANCE = frozenset(
    {KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError._STATE}
)

Handler = Callable[[Sequence[Accepted]], Sequence[Rejected]]


@dataclass
class ConsumerLoop:
    """Runs ``handler`` over batches from ``consumer`` until ``stop`` is set."""

    consumer: Consumer
    dlq_producer: Producer
    contracts: Mapping[str, type[Contract] | TypeAdapter[Any]]  # broker topic name -> contract of its values
    handler: Handler
    stop: threading.Event = field(default_factory=threading.Event)
    batch_size: int = 500
    poll_timeout_seconds: float = 0.5
    max_backoff_seconds: float = 30.0

    def run(self) -> None:
        self.consumer.subscribe(list(self.contracts))
        while not self.stop.is_set():
            self.run_once()

    def run_once(self) -> int:
        """Poll one batch and process it completely; returns how many messages it held."""
        messages = [message for message in self.consumer.consume(self.batch_size, self.poll_timeout_seconds) if self._usable(message)]
        if not messages:
            return 0
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        for message in messages:
            try:
                accepted.append(Accepted(message, decode(self.contracts[message.topic() or ""], message.value())))
            except InvalidMessage as error:
                rejected.append(Rejected(message, str(error)))
        if accepted:
            rejected.extend(self._handle_with_retry(accepted))
        self._dead_letter(rejected)
        self._commit()
        for topic, count in collections.Counter(item.message.topic() for item in accepted).items():
            MESSAGES_CONSUMED.labels(topic).inc(count)
        return len(messages)

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() != KafkaError._PARTITION_EOF:
            log.error("kafka consumer error", extra={"error": str(error)})
            if error.fatal():
                raise RuntimeError(f"fatal Kafka consumer error: {error}")
        return False

    def _handle_with_retry(self, accepted: Sequence[Accepted]) -> Sequence[Rejected]:
        delay = 0.1
        while True:
            try:
                return self.handler(accepted)
            except Exception:
                if self.stop.is_set():
                    raise
                log.exception("handler failed; retrying the same batch", extra={"retry_in_seconds": delay})
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff_seconds)

    def _dead_letter(self, rejected: Sequence[Rejected]) -> None:
        if not rejected:
            return
        for item in rejected:
            send_to_dlq(self.dlq_producer, item.message, error=item.error)
            MESSAGES_REJECTED.labels(item.message.topic()).inc()
        if self.dlq_producer.flush(30) != 0:
            raise RuntimeError("dead-letter records not acknowledged; not committing the batch")

    def _commit(self) -> None:
        delay = 0.1
        while True:
            try:
                self.consumer.commit(asynchronous=False)
                return
            except KafkaException as error:
                # Partitions lost to a rebalance: the batch is redelivered to their new owner, which is
                # harmless because handlers are idempotent. Anything else is retried.
                if error.args[0].code() in _COMMIT_LOST_TO_REBALANCE or self.stop.is_set():
                    log.warning("offset commit failed; the batch may be redelivered", extra={"error": str(error)})
                    return
                log.exception("offset commit failed; retrying")
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff_seconds)
