"""The inbox: stores `results` and `events`, applies `scenario_status` events, idempotently.

It is the handler of a :class:`vap_common.consuming.ConsumerLoop` (which owns the dead-letter topic,
the retries and the commit-after-effect). One batch is one PostgreSQL transaction:

* results are stored with COPY, deduplicated on ``uq_scenario_results_dedupe`` (scenario, run,
  frame), so a redelivered batch stores nothing twice. Fast path: COPY straight into
  ``scenario_results`` inside a savepoint. If any row is already there (a redelivery: rare), the
  unique violation rolls the savepoint back and the batch takes the deduplicating path: COPY into a
  temporary staging table, then ``INSERT … SELECT … ON CONFLICT … DO NOTHING``. Measured by
  bench/api_inbox.py on 2,000-row batches: direct COPY ~100k rows/s, staging + ON CONFLICT ~65k,
  multi-row ``INSERT … VALUES … ON CONFLICT`` ~40k (the speculative insertion of ON CONFLICT is
  what costs; the result is the same either way);
* object events (`events`) are stored with ``INSERT … ON CONFLICT DO NOTHING`` on
  ``uq_scenario_events_dedupe`` (scenario, run, sequence): a few per second per scenario, not worth
  the COPY path. Unlike results they are taken however long ago their scenario ended (no grace);
* status events move ``scenarios.status`` only along the lifecycle transition table; a stale or
  repeated one is ignored, counted and logged. The drops a runner reports with one (``drops``: the
  run's totals) are kept in ``result_drops`` whatever its status, the largest totals per run winning;
* messages about a scenario that does not exist are rejected (they go to the dead-letter topic), and
  so are results of a scenario that ended (inactive or failed) longer than ``late_result_grace_seconds``
  ago: no runner is left to produce them;
* a value PostgreSQL refuses for good is narrowed down to its message by the ConsumerLoop and
  dead-lettered (``vap_common.db.is_permanent_error``); connection errors are retried.
"""

from __future__ import annotations

import io
import logging
import re
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import Any
from uuid import UUID

import msgspec
from prometheus_client import Counter, Histogram, start_http_server
from sqlalchemy import Connection, Engine, text

from vap_api.settings import InboxSettings
from vap_common.consuming import Accepted, ConsumerFailed, ConsumerLoop, Rejected
from vap_common.contracts import FrameResultRecord, ObjectEvent, StatusEvent
from vap_common.db import is_permanent_error, make_engine
from vap_common.kafka import make_consumer, make_producer
from vap_common.lifecycle import FailureReason, ScenarioStatus, can_transition
from vap_common.logs import configure_logging
from vap_common.redact import redact_text
from vap_common.topics import Topic, topic_name

# The inbox's three topics: results (checked as records, for COPY), scenario_status and events.
InboxPayload = FrameResultRecord | StatusEvent | ObjectEvent
log = logging.getLogger(__name__)

RESULTS_STORED = Counter("vap_inbox_results_stored_total", "Frame results inserted into scenario_results")
RESULTS_DUPLICATE = Counter("vap_inbox_results_duplicate_total", "Frame results already stored (redelivery), skipped")
STATUS_APPLIED = Counter("vap_inbox_status_applied_total", "Status events that moved a scenario", ["status"])
STATUS_IGNORED = Counter(
    "vap_inbox_status_ignored_total", "Stale or repeated status events ignored", ["current", "event"]
)
UNKNOWN_SCENARIO = Counter("vap_inbox_unknown_scenario_total", "Messages for a scenario that does not exist", ["kind"])
LATE_RESULTS = Counter(
    "vap_inbox_late_results_total", "Results of a scenario that ended before the grace period, refused"
)
DROPS_REPORTED = Counter("vap_inbox_result_drop_reports_total", "Status events reporting results a runner dropped")
EVENTS_STORED = Counter("vap_inbox_events_stored_total", "Object events inserted into scenario_events")
EVENTS_DUPLICATE = Counter("vap_inbox_events_duplicate_total", "Object events already stored (redelivery), skipped")
BATCH_SECONDS = Histogram("vap_inbox_batch_seconds", "Time to store one consumed batch in PostgreSQL")

_STAGING = text(
    "CREATE TEMP TABLE IF NOT EXISTS inbox_results_staging "
    "(scenario_uuid uuid, run_id text, frame_number bigint, detections jsonb, timestamp timestamptz) "
    "ON COMMIT DELETE ROWS"
)
_COPY_DIRECT = "COPY scenario_results (scenario_uuid, run_id, frame_number, detections, timestamp) FROM STDIN"
_COPY_STAGING = "COPY inbox_results_staging (scenario_uuid, run_id, frame_number, detections, timestamp) FROM STDIN"
_UNIQUE_VIOLATION = "23505"
_MOVE = text(
    "INSERT INTO scenario_results (scenario_uuid, run_id, frame_number, detections, timestamp) "
    "SELECT scenario_uuid, run_id, frame_number, detections, timestamp FROM inbox_results_staging "
    "ON CONFLICT ON CONSTRAINT uq_scenario_results_dedupe DO NOTHING"
)
# `ended`: terminal for longer than the grace period, so results of it are refused.
_ENDED = "(status IN ('inactive', 'failed') AND updated_at < now() - make_interval(secs => :grace_seconds)) AS ended"
_EXISTING = text(f"SELECT scenario_uuid, {_ENDED} FROM scenarios WHERE scenario_uuid = ANY(CAST(:ids AS uuid[]))")
# Locked in a fixed order so two inbox instances (or the API's shutdown) never deadlock.
_LOCK_FOR_STATUS = text(
    f"SELECT scenario_uuid, status, {_ENDED} FROM scenarios WHERE scenario_uuid = ANY(CAST(:ids AS uuid[])) "
    "ORDER BY scenario_uuid FOR UPDATE"
)
_SET_STATUS = text(
    "UPDATE scenarios SET status = :status, updated_at = now(), "
    "error_reason = COALESCE(:error_reason, error_reason), error_message = COALESCE(:error_message, error_message) "
    "WHERE scenario_uuid = :scenario_uuid"
)
_STORE_DROPS = text(
    "INSERT INTO result_drops (scenario_uuid, run_id, dropped, first_frame, last_frame) "
    "VALUES (:scenario_uuid, :run_id, :dropped, :first_frame, :last_frame) "
    "ON CONFLICT (scenario_uuid, run_id) DO UPDATE SET dropped = GREATEST(result_drops.dropped, EXCLUDED.dropped), "
    "first_frame = LEAST(result_drops.first_frame, EXCLUDED.first_frame), "
    "last_frame = GREATEST(result_drops.last_frame, EXCLUDED.last_frame), reported_at = now()"
)

_STORE_EVENTS = text(
    "INSERT INTO scenario_events (scenario_uuid, run_id, sequence, type, track_id, class, frame_number, "
    "captured_at, zone, line, direction, dwell_seconds) "
    "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:runs AS text[]), CAST(:sequences AS bigint[]), "
    "CAST(:types AS text[]), CAST(:tracks AS bigint[]), CAST(:classes AS text[]), CAST(:frames AS bigint[]), "
    "CAST(:captured AS timestamptz[]), CAST(:zones AS text[]), CAST(:lines AS text[]), "
    "CAST(:directions AS text[]), CAST(:dwells AS float8[])) "
    "ON CONFLICT ON CONSTRAINT uq_scenario_events_dedupe DO NOTHING"
)

_STORED_KEYS = text(
    "SELECT r.scenario_uuid, r.run_id, r.frame_number FROM scenario_results AS r "
    "JOIN unnest(CAST(:ids AS uuid[]), CAST(:runs AS text[]), CAST(:frames AS bigint[])) "
    "AS k(scenario_uuid, run_id, frame_number) "
    "USING (scenario_uuid, run_id, frame_number)"
)

# COPY text format: backslash escapes, tab separates columns, newline ends a row.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
_JSON = msgspec.json.Encoder()


@dataclass(frozen=True)
class _StatusChange:
    status: ScenarioStatus
    reason: FailureReason | None
    message: str | None


class Inbox:
    """Batch handler for the results, status and events topics of one topic prefix."""

    def __init__(
        self,
        *,
        engine: Engine,
        results_topic: str,
        status_topic: str,
        events_topic: str,
        late_result_grace_seconds: float = 300.0,
    ) -> None:
        self._engine = engine
        self.results_topic = results_topic
        self.status_topic = status_topic
        self.events_topic = events_topic
        self._grace_seconds = late_result_grace_seconds

    @property
    def contracts(self) -> dict[str, type[InboxPayload]]:
        """Broker topic name → the contract of its values, as ConsumerLoop wants it. Results are
        validated as FrameResultRecords: they go straight into COPY rows."""
        return {self.results_topic: FrameResultRecord, self.status_topic: StatusEvent, self.events_topic: ObjectEvent}

    def handle(self, batch: Sequence[Accepted[InboxPayload]]) -> Sequence[Rejected]:
        """Store one batch in one transaction; returns the messages about unknown scenarios and the
        results of ended ones."""
        results = [item.value for item in batch if isinstance(item.value, FrameResultRecord)]
        events = [item.value for item in batch if isinstance(item.value, StatusEvent)]
        object_events = [item.value for item in batch if isinstance(item.value, ObjectEvent)]
        result_ids = {result.scenario_uuid for result in results}
        object_ids = {event.scenario_uuid for event in object_events}
        with BATCH_SECONDS.time(), self._engine.begin() as connection:
            statuses, ended = self._lock_for_status(connection, {event.scenario_uuid for event in events})
            existing = self._existing(connection, result_ids | object_ids, set(statuses), ended)
            unknown = (result_ids | object_ids | {event.scenario_uuid for event in events}) - existing
            if unknown:  # rare: filter row by row only then
                events = [event for event in events if event.scenario_uuid not in unknown]
                object_events = [event for event in object_events if event.scenario_uuid not in unknown]
            late = ended & result_ids
            if unknown or late:
                results = [
                    result
                    for result in results
                    if result.scenario_uuid not in unknown and result.scenario_uuid not in late
                ]
            # A redelivery of results stored before the scenario ended is no late result: not refused.
            redelivered = (
                self._stored_keys(
                    connection,
                    [
                        item.value
                        for item in batch
                        if isinstance(item.value, FrameResultRecord) and item.value.scenario_uuid in late
                    ],
                )
                if late
                else set()
            )
            self._store_results(connection, results)
            self._apply_statuses(connection, events, statuses)
            self._store_drops(connection, events)
            self._store_events(connection, object_events)
        RESULTS_DUPLICATE.inc(len(redelivered))
        return self._reject(batch, unknown, late, redelivered) if unknown or late else []

    def _reject(
        self,
        batch: Sequence[Accepted[InboxPayload]],
        unknown: set[UUID],
        ended: set[UUID],
        redelivered: set[tuple[UUID, str, int]],
    ) -> list[Rejected]:
        rejected: list[Rejected] = []
        for item in batch:
            value = item.value
            scenario_uuid = value.scenario_uuid
            if scenario_uuid in unknown:
                UNKNOWN_SCENARIO.labels(_KINDS[type(value)]).inc()
                error = f"unknown scenario_uuid {scenario_uuid}: no such scenario"
            elif isinstance(value, FrameResultRecord) and scenario_uuid in ended and _key(value) not in redelivered:
                LATE_RESULTS.inc()
                error = (
                    f"scenario {scenario_uuid} ended more than {self._grace_seconds:g}s ago; "
                    "its results are no longer accepted"
                )
            else:
                continue
            log.warning("message rejected", extra={"topic": item.message.topic(), "error": error})
            rejected.append(Rejected(item.message, error))
        return rejected

    # --- lookups ----------------------------------------------------------------------------------

    def _lock_for_status(self, connection: Connection, ids: set[UUID]) -> tuple[dict[UUID, ScenarioStatus], set[UUID]]:
        """The locked scenarios' statuses, and which of them ended longer than the grace ago."""
        if not ids:
            return {}, set()
        rows = connection.execute(
            _LOCK_FOR_STATUS, {"ids": sorted(str(uuid) for uuid in ids), "grace_seconds": self._grace_seconds}
        ).all()
        return {row.scenario_uuid: ScenarioStatus(row.status) for row in rows}, {
            row.scenario_uuid for row in rows if row.ended
        }

    def _existing(self, connection: Connection, ids: set[UUID], locked: set[UUID], ended: set[UUID]) -> set[UUID]:
        """The scenarios among ``ids`` and ``locked`` that exist; adds the ended ones to ``ended``."""
        found = set(locked)
        missing = sorted(str(uuid) for uuid in ids - found)
        if missing:
            for row in connection.execute(_EXISTING, {"ids": missing, "grace_seconds": self._grace_seconds}):
                found.add(row.scenario_uuid)
                if row.ended:
                    ended.add(row.scenario_uuid)
        return found

    def _stored_keys(self, connection: Connection, results: list[FrameResultRecord]) -> set[tuple[UUID, str, int]]:
        """Which of ``results`` are stored already (the dedupe key of each)."""
        if not results:
            return set()
        rows = connection.execute(
            _STORED_KEYS,
            {
                "ids": [str(result.scenario_uuid) for result in results],
                "runs": [result.run_id for result in results],
                "frames": [result.frame_number for result in results],
            },
        )
        return {(row.scenario_uuid, row.run_id, row.frame_number) for row in rows}

    # --- effects ----------------------------------------------------------------------------------

    def _store_results(self, connection: Connection, results: list[FrameResultRecord]) -> None:
        if not results:
            return
        dbapi: Any = connection.connection.dbapi_connection
        savepoint = connection.begin_nested()
        try:
            with dbapi.cursor() as cursor:
                cursor.copy_expert(_COPY_DIRECT, _Rows(_copy_lines(results)))
            savepoint.commit()
            inserted = len(results)
        except Exception as error:
            if getattr(error, "pgcode", None) != _UNIQUE_VIOLATION:
                raise
            savepoint.rollback()
            connection.execute(_STAGING)
            with dbapi.cursor() as cursor:
                cursor.copy_expert(_COPY_STAGING, _Rows(_copy_lines(results)))
            inserted = connection.execute(_MOVE).rowcount
        RESULTS_STORED.inc(inserted)
        RESULTS_DUPLICATE.inc(len(results) - inserted)

    def _apply_statuses(
        self, connection: Connection, events: list[StatusEvent], statuses: dict[UUID, ScenarioStatus]
    ) -> None:
        changes: dict[UUID, _StatusChange] = {}
        for event in events:  # batch order is partition order: one scenario's events stay in order
            current = statuses[event.scenario_uuid]
            if not can_transition(current, event.status):
                STATUS_IGNORED.labels(current.value, event.status.value).inc()
                log.info(
                    "stale status event ignored",
                    extra={
                        "scenario_uuid": str(event.scenario_uuid),
                        "current": current.value,
                        "event_status": event.status.value,
                    },
                )
                continue
            statuses[event.scenario_uuid] = event.status
            failed = event.status is ScenarioStatus.FAILED
            changes[event.scenario_uuid] = _StatusChange(
                event.status,
                event.reason if failed else None,
                redact_text(event.message) if failed and event.message else None,
            )
        for scenario_uuid, change in changes.items():
            connection.execute(
                _SET_STATUS,
                {
                    "scenario_uuid": scenario_uuid,
                    "status": change.status.value,
                    "error_reason": change.reason.value if change.reason else None,
                    "error_message": change.message,
                },
            )
            STATUS_APPLIED.labels(change.status.value).inc()

    def _store_drops(self, connection: Connection, events: list[StatusEvent]) -> None:
        reports = [(event.scenario_uuid, event.drops) for event in events if event.drops is not None]
        if not reports:
            return
        rows = [{"scenario_uuid": scenario_uuid, **drops.model_dump()} for scenario_uuid, drops in reports]
        connection.execute(_STORE_DROPS, rows)
        DROPS_REPORTED.inc(len(rows))
        for row in rows:
            log.warning("a runner reported dropped results", extra={**row, "scenario_uuid": str(row["scenario_uuid"])})

    def _store_events(self, connection: Connection, events: list[ObjectEvent]) -> None:
        if not events:
            return
        inserted = connection.execute(
            _STORE_EVENTS,
            {
                "ids": [str(event.scenario_uuid) for event in events],
                "runs": [event.run_id for event in events],
                "sequences": [event.sequence for event in events],
                "types": [event.type.value for event in events],
                "tracks": [event.track_id for event in events],
                "classes": [event.class_name for event in events],
                "frames": [event.frame_number for event in events],
                "captured": [event.captured_at for event in events],
                "zones": [event.zone for event in events],
                "lines": [event.line for event in events],
                "directions": [event.direction for event in events],
                "dwells": [event.dwell_seconds for event in events],
            },
        ).rowcount
        EVENTS_STORED.inc(inserted)
        EVENTS_DUPLICATE.inc(len(events) - inserted)


# The label of UNKNOWN_SCENARIO per message kind.
_KINDS: dict[type[InboxPayload], str] = {FrameResultRecord: "result", StatusEvent: "status", ObjectEvent: "event"}


def _key(result: FrameResultRecord) -> tuple[UUID, str, int]:
    return result.scenario_uuid, result.run_id, result.frame_number


def _copy_lines(results: list[FrameResultRecord]) -> Iterator[str]:
    """COPY text-format rows of ``results`` (the hot loop of the inbox: kept lean)."""
    uuids: dict[UUID, str] = {}
    encode_json = _JSON.encode
    for result in results:
        scenario = uuids.get(result.scenario_uuid)
        if scenario is None:
            scenario = uuids[result.scenario_uuid] = str(result.scenario_uuid)
        run_id = result.run_id
        if _NEEDS_ESCAPE.search(run_id):
            run_id = run_id.translate(_COPY_ESCAPES)
        # JSON text never holds a raw tab or newline; only its backslashes need escaping for COPY.
        detections = encode_json(result.detections).decode().replace("\\", "\\\\")
        yield f"{scenario}\t{run_id}\t{result.frame_number}\t{detections}\t{result.timestamp.isoformat()}\n"


class _Rows(io.TextIOBase):
    """COPY input formatted as psycopg2 reads it, a few kilobytes at a time: PostgreSQL stores the
    first rows (on its own core) while the next ones are formatted, instead of after all of them."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines

    def read(self, size: int | None = -1) -> str:
        wanted = size if size is not None and size >= 0 else float("inf")
        parts: list[str] = []
        length = 0
        for line in self._lines:
            parts.append(line)
            length += len(line)
            if length >= wanted:
                break
        return "".join(parts)


def main() -> None:
    """Entry point of ``vap-inbox``: consume until SIGTERM/SIGINT, then finish the batch and exit 0."""
    settings = InboxSettings()
    configure_logging(service="vap-inbox", level=settings.log_level)
    server, _thread = start_http_server(settings.metrics_port)
    engine = make_engine(settings.database, pool_size=2, hide_parameters=True)
    prefix = settings.kafka.topic_prefix
    inbox = Inbox(
        engine=engine,
        results_topic=topic_name(Topic.RESULTS, prefix),
        status_topic=topic_name(Topic.SCENARIO_STATUS, prefix),
        events_topic=topic_name(Topic.EVENTS, prefix),
        late_result_grace_seconds=settings.inbox.late_result_grace_seconds,
    )
    producer = make_producer(settings.kafka)
    loop = ConsumerLoop(
        new_consumer=partial(
            make_consumer,
            settings.kafka,
            group_id=f"{prefix}{settings.inbox.group_id}",
            **{"session.timeout.ms": int(settings.inbox.session_timeout_seconds * 1000)},
        ),
        dlq_producer=producer,
        contracts=inbox.contracts,
        handler=inbox.handle,
        batch_size=settings.inbox.batch_size,
        poll_timeout_seconds=settings.inbox.poll_timeout_seconds,
        max_backoff_seconds=settings.inbox.max_backoff_seconds,
        is_permanent=is_permanent_error,
        stall_timeout_seconds=settings.inbox.stall_timeout_seconds,
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        loop.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("inbox started", extra={"metrics_port": server.server_port, "topics": list(inbox.contracts)})
    try:
        loop.run()
    except ConsumerFailed as error:
        log.error("inbox consumer failed; exiting for the supervisor to restart it", extra={"error": str(error)})
        raise SystemExit(1) from None
    finally:
        loop.consumer.close()
        producer.flush(30)
        engine.dispose()
    log.info("inbox stopped")
