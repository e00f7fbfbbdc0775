"""The outbox relay: publishes committed outbox rows to Kafka, then marks them published.

Per-scenario order with several relays (claim per scenario)
    A relay claims, with ``FOR UPDATE SKIP LOCKED``, only rows that are the OLDEST unpublished row
    of their scenario. A newer row whose older sibling is unpublished (being published by another
    relay right now, or failing) is not eligible, so a scenario's commands go out one at a time in
    id order, whichever relay takes them, while different scenarios are spread over all relays.
    It is safe because a newer row becomes eligible only in a snapshot where the older row's
    ``published_at`` is committed, and that commit happens only after the broker acknowledged the
    older command. One scenario's rows are committed in id order: the shutdown row is written under
    the scenario's row lock, after the start row committed. An active/standby advisory lock would
    keep the order too, but lets only one relay work and fails over no faster.

Delivery
    The claimed rows stay locked while the batch is produced and ``flush`` waits for every delivery
    report; the acknowledged rows are marked in the SAME transaction, failed ones get ``attempts``
    and ``last_error``. A crash before that commit leaves the rows unpublished: they are published
    again (at least once; the inbox side and the orchestrator deduplicate by scenario state, and
    every record carries its outbox id in the ``vap.outbox_id`` header). Kafka down: the batch fails
    after ``delivery_timeout_seconds`` and is retried with exponential backoff; nothing is lost.

Wake-up
    ``LISTEN vap_outbox`` (migration 0002's trigger notifies on every insert) wakes the relay within
    milliseconds; notifications are a hint only, the relay also polls every ``poll_interval_seconds``.
"""

from __future__ import annotations

import logging
import select
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import Any
from uuid import UUID

from confluent_kafka import Producer
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from sqlalchemy import Connection, Engine, text

from vap_api.settings import RelayOptions, RelaySettings
from vap_common.contracts import ScenarioCommand, encode
from vap_common.db import make_engine
from vap_common.kafka import acknowledged, deliver, make_producer, wait_for_deliveries
from vap_common.logs import configure_logging
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, topic_name

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "vap_outbox"
OUTBOX_ID_HEADER = "vap.outbox_id"
EVENT_TYPE_HEADER = "vap.event_type"
_STOP_CHECK_SECONDS = 0.5

PUBLISHED = Counter("vap_outbox_published_total", "Outbox rows published and marked")
PUBLISH_FAILURES = Counter("vap_outbox_publish_failures_total", "Outbox rows whose publication failed (retried later)")
PRUNED = Counter("vap_outbox_pruned_total", "Published outbox rows deleted after the retention period")
OLDEST_UNPUBLISHED = Gauge(
    "vap_outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished outbox row (0: none)"
)
PUBLISH_LATENCY = Histogram(
    "vap_outbox_publish_latency_seconds",
    "Outbox row creation to broker acknowledgement",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# The oldest unpublished row of each scenario, oldest first; rows another relay holds are skipped.
_CLAIM = text(
    """
    SELECT o.id, o.scenario_uuid, o.topic, o.event_type, o.payload, o.created_at
    FROM outbox_scenario AS o
    WHERE o.published_at IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM outbox_scenario AS older
          WHERE older.scenario_uuid = o.scenario_uuid AND older.id < o.id AND older.published_at IS NULL
      )
    ORDER BY o.id
    LIMIT :limit
    FOR UPDATE OF o SKIP LOCKED
    """
)
_MARK_PUBLISHED = text("UPDATE outbox_scenario SET published_at = now(), attempts = attempts + 1 WHERE id = ANY(:ids)")
_MARK_FAILED = text("UPDATE outbox_scenario SET attempts = attempts + 1, last_error = :error WHERE id = :id")
_PRUNE = text(
    """
    DELETE FROM outbox_scenario WHERE id IN (
        SELECT id FROM outbox_scenario
        WHERE published_at < now() - make_interval(secs => :retention_seconds)
        ORDER BY published_at
        LIMIT :limit
    )
    """
)
_OLDEST_AGE = text(
    "SELECT extract(epoch FROM now() - created_at) FROM outbox_scenario WHERE published_at IS NULL ORDER BY id LIMIT 1"
)
_TABLE_SCHEMA = text("SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'outbox_scenario'::regclass")


@dataclass(frozen=True)
class BatchOutcome:
    """What one claim → publish → mark transaction did."""

    published: int
    failed: int


@dataclass(frozen=True)
class _Row:
    id: int
    scenario_uuid: UUID
    topic: str
    event_type: str
    payload: dict[str, Any]
    created_at_epoch: float


def _observe_latency(row: _Row, answer: Future[None]) -> None:
    """Runs as the delivery report is served: row creation -> broker acknowledgement."""
    if acknowledged(answer):
        PUBLISH_LATENCY.observe(max(0.0, time.time() - row.created_at_epoch))


class Relay:
    """Publishes the outbox of one database (schema) to Kafka; see the module docstring."""

    def __init__(
        self, *, engine: Engine, kafka: KafkaSettings, options: RelayOptions, stop: threading.Event | None = None
    ) -> None:
        self._engine = engine
        self._kafka = kafka
        self._options = options
        self.stop = stop or threading.Event()
        self._producer = self._make_producer()
        self._listener: Any = None  # a psycopg2 connection in LISTEN mode, or None while unavailable
        self._schema: str | None = None
        self._next_prune = time.monotonic() + options.prune_interval_seconds
        self._next_gauge = 0.0

    def _make_producer(self) -> Producer:
        # Every message gets a delivery report before flush() returns: success, or a timeout error.
        timeout_ms = int(self._options.delivery_timeout_seconds * 1000)
        return make_producer(self._kafka, **{"message.timeout.ms": timeout_ms, "linger.ms": 1})

    # --- one batch --------------------------------------------------------------------------------

    def run_once(self) -> BatchOutcome:
        """Claim, publish and mark one batch in one transaction."""
        with self._engine.begin() as connection:
            rows = self._claim(connection)
            if not rows:
                return BatchOutcome(0, 0)
            errors = self._publish(rows)
            self._mark(connection, rows, errors)
        published = len(rows) - len(errors)
        PUBLISHED.inc(published)
        PUBLISH_FAILURES.inc(len(errors))
        if errors:
            first = next(iter(errors.values()))
            log.warning(
                "outbox rows not published; will retry",
                extra={"failed": len(errors), "published": published, "error": first},
            )
        return BatchOutcome(published, len(errors))

    def _claim(self, connection: Connection) -> list[_Row]:
        result = connection.execute(_CLAIM, {"limit": self._options.batch_size})
        return [
            _Row(row.id, row.scenario_uuid, row.topic, row.event_type, row.payload, row.created_at.timestamp())
            for row in result
        ]

    def _publish(self, rows: list[_Row]) -> dict[int, str]:
        """Produce every row and wait for the delivery reports; returns the failed row ids and why."""
        errors: dict[int, str] = {}
        answers: dict[int, Future[None]] = {}
        for row in rows:
            try:
                answers[row.id] = deliver(
                    self._producer,
                    topic_name(Topic(row.topic), self._kafka.topic_prefix),
                    key=str(row.scenario_uuid),
                    value=encode(ScenarioCommand.model_validate(row.payload)),
                    headers={OUTBOX_ID_HEADER: str(row.id), EVENT_TYPE_HEADER: row.event_type},
                )
                answers[row.id].add_done_callback(partial(_observe_latency, row))
            except Exception as error:  # noqa: BLE001 - any row that cannot be produced stays unpublished
                errors[row.id] = f"{type(error).__name__}: {error}"
            self._producer.poll(0)
        # message.timeout.ms bounds each delivery, so every report arrives within this timeout.
        wait_for_deliveries(
            self._producer, list(answers.values()), timeout_seconds=self._options.delivery_timeout_seconds + 5.0
        )
        fatal = False
        for row_id, answer in answers.items():
            if not answer.done():
                errors[row_id] = "no delivery report before the timeout"
            elif (failure := answer.exception()) is not None:
                errors[row_id] = str(failure.args[0])
                fatal = fatal or bool(failure.args[0].fatal())
        if fatal:
            log.error("Kafka producer hit a fatal error; creating a new one")
            self._producer = self._make_producer()
        return errors

    def _mark(self, connection: Connection, rows: list[_Row], errors: dict[int, str]) -> None:
        published = [row.id for row in rows if row.id not in errors]
        if published:
            connection.execute(_MARK_PUBLISHED, {"ids": published})
        for row_id, error in errors.items():
            connection.execute(_MARK_FAILED, {"id": row_id, "error": error[:1000]})

    # --- housekeeping -----------------------------------------------------------------------------

    def prune(self) -> int:
        """Delete published rows older than the retention, in small transactions; returns how many."""
        total = 0
        retention_seconds = self._options.retention_hours * 3600.0
        while not self.stop.is_set():
            with self._engine.begin() as connection:
                deleted = connection.execute(
                    _PRUNE, {"retention_seconds": retention_seconds, "limit": self._options.prune_batch_size}
                ).rowcount
            total += deleted
            if deleted < self._options.prune_batch_size:
                break
        PRUNED.inc(total)
        if total:
            log.info("pruned published outbox rows", extra={"deleted": total})
        return total

    def refresh_gauge(self) -> float:
        """Set and return the age in seconds of the oldest unpublished row (0 when there is none)."""
        with self._engine.connect() as connection:
            age = connection.execute(_OLDEST_AGE).scalar()
        value = float(age or 0.0)
        OLDEST_UNPUBLISHED.set(value)
        return value

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_gauge:
            self._next_gauge = now + self._options.gauge_interval_seconds
            self.refresh_gauge()
        if now >= self._next_prune:
            self._next_prune = now + self._options.prune_interval_seconds
            self.prune()

    # --- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Publish until ``stop`` is set: drain on each notification or poll tick, back off on failure."""
        backoff = self._options.min_backoff_seconds
        while not self.stop.is_set():
            try:
                outcome = self.run_once()
                self._housekeeping()
            except Exception:
                log.exception("outbox batch failed; retrying", extra={"retry_in_seconds": backoff})
                outcome = BatchOutcome(0, 1)
            if outcome.failed:
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self._options.max_backoff_seconds)
                continue
            backoff = self._options.min_backoff_seconds
            if outcome.published:
                continue  # a full batch, or newer rows of the same scenarios became eligible
            self._wait_for_notification(self._options.poll_interval_seconds)
        self._close_listener()
        self._producer.flush(self._options.delivery_timeout_seconds)

    def _wait_for_notification(self, timeout_seconds: float) -> None:
        listener = self._listen()
        if listener is None:
            self.stop.wait(timeout_seconds)
            return
        deadline = time.monotonic() + timeout_seconds
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                # Short slices, so a stop request is seen within half a second.
                ready, _, _ = select.select([listener], [], [], min(remaining, _STOP_CHECK_SECONDS))
                if not ready:
                    continue
                listener.poll()
            except Exception:
                log.warning("LISTEN connection lost; polling until it is back", exc_info=True)
                self._close_listener()
                return
            notifies = list(listener.notifies)
            listener.notifies.clear()
            if any(notification.payload == self._schema for notification in notifies):
                return

    def _listen(self) -> Any:
        if self._listener is not None:
            return self._listener
        try:
            pooled = self._engine.raw_connection()
            pooled.detach()  # ours for good: a LISTENing connection must not go back to the pool
            connection: Any = pooled.dbapi_connection
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(_TABLE_SCHEMA.text)
                self._schema = cursor.fetchone()[0]
                cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self._listener = connection
        except Exception:
            log.warning("cannot LISTEN for outbox notifications; polling only", exc_info=True)
            self._listener = None
        return self._listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:
                log.debug("closing the LISTEN connection failed", exc_info=True)
            self._listener = None


def main() -> None:
    """Entry point of ``vap-relay``: relay until SIGTERM/SIGINT, then flush and exit 0."""
    settings = RelaySettings()
    configure_logging(service="vap-relay", level=settings.log_level)
    server, _thread = start_http_server(settings.metrics_port)
    engine = make_engine(settings.database, pool_size=2, hide_parameters=True)
    relay = Relay(engine=engine, kafka=settings.kafka, options=settings.relay)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        relay.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "outbox relay started", extra={"metrics_port": server.server_port, "topic_prefix": settings.kafka.topic_prefix}
    )
    relay.run()
    engine.dispose()
    log.info("outbox relay stopped")
