"""Publishes frame results and status events to Kafka (key = scenario UUID), through broker outages.

1. Results go through :class:`~vap_runner.undelivered.UndeliveredResults`: in frame order, within the
   memory budget; a live stream drops its oldest results over the budget (counted, logged, reported in
   a status event's ``drops`` once delivery has caught up: the API shows them), a file pauses instead
   (:meth:`ResultPublisher.has_room`).
2. librdkafka never gives up on a message (``message.timeout.ms=0``) and its queue is bounded, so it
   holds only the budget's producer share of results, plus room for status events.
3. Status events go straight to the producer, never into the droppable buffer: never dropped.
4. Kafka acknowledging nothing for ``outage_after_seconds`` while results wait is an outage (logged);
   for ``outage_limit_seconds`` it is :class:`DownstreamBlocked`, as is a message Kafka refuses for good.
5. :meth:`ResultPublisher.close` (at exit) counts and logs what Kafka never acknowledged as dropped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from uuid import UUID

from confluent_kafka import KafkaError, KafkaException, Message

from vap_common.contracts import ResultDrops, StatusEvent, encode
from vap_common.kafka import acknowledged, deliver, make_producer, wait_for_deliveries
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, topic_name
from vap_runner.metrics import RunnerMetrics
from vap_runner.undelivered import PRODUCER_MAX_RESULTS, Drops, UndeliveredResults

log = logging.getLogger(__name__)

# How long one wait for acknowledgements lasts (the caller's liveness beat runs in between).
_POLL_SECONDS = 0.1
# Room in librdkafka's queue beyond the results' share: status events always fit.
_STATUS_ROOM_MESSAGES = 1000
_STATUS_ROOM_KIB = 1024
# Delivery reports of messages purged at exit: not delivered, but not Kafka refusing them either.
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})


class DownstreamBlocked(Exception):
    """Kafka refused a message or acknowledged none for the outage limit. Not the camera's fault."""


class ResultPublisher:
    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        scenario_uuid: UUID,
        run_id: str,
        outage_after_seconds: float,
        outage_limit_seconds: float,
        budget_bytes: int,
        linger_ms: int,
        metrics: RunnerMetrics,
        on_wait: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._results = UndeliveredResults(
            budget_bytes=budget_bytes, send=self._send_result, on_drop=metrics.results_dropped.labels("budget").inc
        )
        # Its own log lines go through logging too, so they are JSON like ours (served by poll()).
        # linger.ms: results wait that long to go in one request; a flush() sends at once (status events).
        self._producer = make_producer(
            kafka,
            **{
                "message.timeout.ms": 0,  # never: a timed-out message would be lost, and with it its order
                "queue.buffering.max.messages": PRODUCER_MAX_RESULTS + _STATUS_ROOM_MESSAGES,
                "queue.buffering.max.kbytes": math.ceil(self._results.producer_share_bytes / 1024) + _STATUS_ROOM_KIB,
                "linger.ms": linger_ms,
                "logger": logging.getLogger("librdkafka"),
            },
        )
        self._results_topic = topic_name(Topic.RESULTS, kafka.topic_prefix)
        self._status_topic = topic_name(Topic.SCENARIO_STATUS, kafka.topic_prefix)
        self._scenario_uuid = scenario_uuid
        self._key = str(scenario_uuid).encode()
        self._run_id = run_id
        self._first_dropped_frame: int | None = None
        self._outage_after_seconds = outage_after_seconds
        self._outage_limit_seconds = outage_limit_seconds
        self._metrics = metrics
        self._on_wait = on_wait
        self._clock = clock
        self._delivery_error: str | None = None
        self._statuses_pending = 0
        self._acknowledged_seen = 0
        self._progress_at = clock()  # last acknowledgement, or last moment nothing waited
        self._outage_since: float | None = None
        self._had_room = True
        self._closed = False
        metrics.results_undelivered.set_function(lambda: self._results.undelivered)
        metrics.results_undelivered_bytes.set_function(lambda: self._results.undelivered_bytes)
        metrics.downstream_stalled_seconds.set_function(self._stalled_seconds)

    @property
    def live(self) -> bool:
        return self._results.keep_newest

    @live.setter
    def live(self, live: bool) -> None:
        """A live stream drops its oldest results over the budget; a file pauses (:meth:`has_room`)."""
        self._results.keep_newest = live

    @property
    def acknowledged(self) -> int:
        """Results Kafka acknowledged."""
        return self._results.acknowledged

    def publish_result(self, frame_number: int, message: bytes) -> None:
        """Queue an encoded FrameResult (frame order); raise :class:`DownstreamBlocked` if Kafka refused one."""
        self._raise_if_failed()
        self._results.add(frame_number, message)

    def has_room(self) -> bool:
        """False while a file's undelivered results fill the budget: take no frame then."""
        room = self._results.has_room()
        if room != self._had_room:
            self._had_room = room
            extra = {
                "results_undelivered": self._results.undelivered,
                "budget_mib": round(self._results.budget_bytes / 2**20, 3),
            }
            if room:
                log.info("results delivered again; reading on", extra=extra)
            else:
                log.warning("undelivered results fill their budget; reading paused until Kafka takes them", extra=extra)
        return room

    def send_status(
        self, status: ScenarioStatus, *, message: str | None = None, drops: ResultDrops | None = None
    ) -> None:
        """Queue a status event without waiting (delivered with the results, or by the final flush)."""
        value = encode(StatusEvent(scenario_uuid=self._scenario_uuid, status=status, message=message, drops=drops))
        try:
            self._producer.produce(self._status_topic, key=self._key, value=value, on_delivery=self._on_status_delivery)
        except (KafkaException, BufferError) as error:
            raise DownstreamBlocked(f"Kafka refused a status event: {error}") from error
        self._statuses_pending += 1
        self._producer.poll(0)

    def publish_status(
        self,
        status: ScenarioStatus,
        *,
        reason: FailureReason | None = None,
        message: str | None = None,
        timeout_seconds: float,
    ) -> bool:
        """Send a status event and wait for the broker's ack; False if it was not acknowledged in time."""
        try:
            value = encode(
                StatusEvent(scenario_uuid=self._scenario_uuid, status=status, reason=reason, message=message)
            )
            answer = deliver(self._producer, self._status_topic, key=self._key, value=value)
        except (KafkaException, BufferError) as error:
            log.error("Kafka refused a status event", extra={"status": status.value, "error": str(error)})
            return False
        wait_for_deliveries(
            self._producer,
            [answer],
            timeout_seconds=timeout_seconds,
            step_seconds=_POLL_SECONDS,
            between_steps=self._on_wait,
        )
        delivered = acknowledged(answer)
        log.info(
            "status published" if delivered else "status not acknowledged",
            extra={"status": status.value, "reason": reason and reason.value},
        )
        return delivered

    def poll(self) -> None:
        """Serve delivery reports and hand held results on; raise :class:`DownstreamBlocked` if Kafka
        refused a message or has acknowledged no result for the outage limit."""
        self._producer.poll(0)
        self._results.pump()
        self._raise_if_failed()
        stalled = self._watch()
        if stalled >= self._outage_limit_seconds:
            raise DownstreamBlocked(
                f"Kafka acknowledged no result for {stalled:.0f} s (outage limit {self._outage_limit_seconds:g} s); "
                f"{self._results.undelivered} results wait, {self._results.dropped} dropped"
            )

    def flush(self, *, timeout_seconds: float) -> bool:
        """Deliver every held result and queued message; True when all were acknowledged within ``timeout_seconds``."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            self._results.pump()
            remaining = deadline - time.monotonic()
            queued = self._producer.flush(max(0.0, min(remaining, _POLL_SECONDS)))
            self._watch()
            if self._delivery_error is not None:
                return False
            if queued == 0 and not self._results.undelivered:
                return True
            if remaining <= 0:
                return False
            self._on_wait()

    def close(self) -> int:
        """At exit: give up what Kafka has not acknowledged, count it as dropped and log it; returns how many."""
        if self._closed:
            return 0
        self._closed = True
        lost_before, statuses_undelivered = self._results.lost, self._statuses_pending
        self._producer.purge()
        self._producer.flush(1.0)  # serves the purged messages' delivery reports (at once: nothing is left in flight)
        # Destroyed here, not by the garbage collector at interpreter exit, where librdkafka's last
        # callbacks (logs, reports) would find no Python thread state to run in.
        self._producer.close()
        self._results.abandon()
        undelivered = self._results.lost - lost_before
        if undelivered:
            self._metrics.results_dropped.labels("undelivered").inc(undelivered)
        self._log_drops()
        if undelivered or statuses_undelivered:
            log.error(
                "Kafka did not acknowledge every message before exit; dropped",
                extra={
                    "results_dropped": undelivered,
                    "status_events_dropped": statuses_undelivered,
                    "results_acknowledged": self._results.acknowledged,
                },
            )
        return undelivered

    def _send_result(self, value: bytes) -> None:
        """Hand one result to librdkafka (BufferError: no room, it stays held)."""
        try:
            self._producer.produce(
                self._results_topic, key=self._key, value=value, on_delivery=self._on_result_delivery
            )
        except KafkaException as error:  # refused for good, e.g. larger than the broker takes
            raise DownstreamBlocked(f"Kafka refused a result: {error}") from error

    def _watch(self) -> float:
        """Follow Kafka's progress: log an outage's start and end, report drops once caught up. Returns
        for how long results have waited with no acknowledgement."""
        now = self._clock()
        results = self._results
        if results.acknowledged == self._acknowledged_seen and results.undelivered:
            stalled = now - self._progress_at
            if self._outage_since is None and stalled >= self._outage_after_seconds:
                self._outage_since = self._progress_at
                log.warning(
                    "Kafka outage: no result acknowledged; holding results",
                    extra={
                        "stalled_seconds": round(stalled, 1),
                        "results_undelivered": results.undelivered,
                        "outage_limit_seconds": self._outage_limit_seconds,
                    },
                )
            return stalled
        self._acknowledged_seen = results.acknowledged
        self._progress_at = now
        if self._outage_since is not None:
            log.info(
                "Kafka acknowledges results again",
                extra={
                    "outage_seconds": round(now - self._outage_since, 1),
                    "results_undelivered": results.undelivered,
                    "results_dropped": results.dropped,
                },
            )
            self._outage_since = None
        if not results.held:
            self._report_drops()
        return 0.0

    def _stalled_seconds(self) -> float:
        if not self._results.undelivered or self._results.acknowledged != self._acknowledged_seen:
            return 0.0
        return max(0.0, self._clock() - self._progress_at)

    def _report_drops(self) -> None:
        """Dropped results, once delivery has caught up: a log line, and a status event for the platform."""
        drops = self._log_drops()
        if drops is None:
            return
        if self._first_dropped_frame is None:
            self._first_dropped_frame = drops.first_frame
        budget_mib = self._results.budget_bytes / 2**20
        try:
            # `active` again: the scenario's state is unchanged (the inbox ignores a repeated state and
            # stores the run's totals from `drops`).
            self.send_status(
                ScenarioStatus.ACTIVE,
                message=f"results dropped: {drops.count} (frames {drops.first_frame}-{drops.last_frame}), "
                f"oldest first: Kafka took none while the undelivered-results budget ({budget_mib:g} MiB) was full",
                drops=ResultDrops(
                    run_id=self._run_id,
                    dropped=self._results.dropped,
                    first_frame=self._first_dropped_frame,
                    last_frame=drops.last_frame,
                ),
            )
        except DownstreamBlocked as error:  # the log line above still says it
            log.error("drop report not queued", extra={"error": str(error)})

    def _log_drops(self) -> Drops | None:
        drops = self._results.take_drops()
        if drops is not None:
            log.warning(
                "results dropped: Kafka took none while the undelivered-results budget was full",
                extra={
                    "results_dropped": drops.count,
                    "first_frame": drops.first_frame,
                    "last_frame": drops.last_frame,
                    "results_dropped_total": self._results.dropped,
                },
            )
        return drops

    def _on_result_delivery(self, error: KafkaError | None, message: Message) -> None:
        self._results.delivered(len(message), ok=error is None)
        if error is not None:
            self._record_error(error)

    def _on_status_delivery(self, error: KafkaError | None, _message: Message) -> None:
        self._statuses_pending -= 1
        if error is not None:
            self._record_error(error)

    def _record_error(self, error: KafkaError) -> None:
        if error.code() not in _PURGED and self._delivery_error is None:
            self._delivery_error = str(error)
            log.error("Kafka did not take a message", extra={"error": str(error)})

    def _raise_if_failed(self) -> None:
        if self._delivery_error is not None:
            raise DownstreamBlocked(f"Kafka did not take a message: {self._delivery_error}")
