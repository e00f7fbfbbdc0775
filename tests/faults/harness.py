"""The counting harness of the fault tests: load on the platform, and what became of it.

Per scenario it counts the results the runners published (the private `results` topic read from its
beginning), stored (`scenario_results` rows), served (``GET /api/v1/prediction`` pages), duplicates
stored and served, what was lost, and whether the scenario is stuck (neither final nor running). The
recovery times come from PostgreSQL's own clock: ``scenario_results.received_at`` of the first result
stored after the fault ended, ``scenarios.updated_at`` of the last scenario to become final.

Every case ends with :meth:`Figures.check`: 0 lost, 0 duplicates, 0 stuck, every scenario inactive
without error, every file scenario served every sampled frame, and no service given up on by
supervisord; nobody (not the test either) restarts a service by hand.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from dev.platform_stack import SupervisedPlatform
from tests.e2e.e2e_support import CAR_SAMPLED, TERMINAL, Api, Published, stored
from tests.faults.servers import KafkaBroker, KafkaCluster, PostgresCluster
from tests.helpers import TopicReader, patience, wait_until
from vap_common.contracts import FrameResult, InvalidMessage, decode
from vap_common.kafka import make_consumer
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic

SERVICES = ("api", "relay", "inbox", "operator")
# Log lines worth a count in each case's figures (the symptoms of issue 12 and their cures), matched
# without regard to case.
LOG_SIGNALS = {
    # librdkafka: no heartbeat answered for the session timeout; the assignment is revoked (lost).
    "session timed out": "|SESSTMOUT|",
    # librdkafka: an error after which the client is unusable (e.g. a fenced static member).
    "fatal client error": "|FATAL|",
    # ConsumerLoop replaced such a consumer in place (no process restart).
    "consumer renewed": "replacing the consumer",
    "batch retried": "batch failed; it will be read again",
    "commit dropped": "offset commit failed",
    # ConsumerStalled: the service exits for supervisord to restart it.
    "stalled": "stalled",
    "dead-lettered": "message sent to dead-letter topic",
}


@dataclass
class FaultPlatform:
    """The platform under supervisord on this test's private broker and database."""

    supervised: SupervisedPlatform
    api: Api
    engine: Engine
    kafka: KafkaSettings
    broker: KafkaBroker | KafkaCluster
    postgres: PostgresCluster

    def start_load(
        self, count: int, camera_url: str, *, settings: dict[str, Any] | None = None, name: str = "load"
    ) -> list[uuid.UUID]:
        return [self.api.init(camera_url, settings=settings, name=f"{name} {index}") for index in range(count)]

    def exits(self) -> dict[str, int]:
        """How often supervisord saw each service exit (and restarted it)."""
        log = (self.supervised.log_dir / "supervisord.log").read_text(errors="replace")
        return {name: len(re.findall(rf"exited: {name} \(", log)) for name in SERVICES}

    def pids(self) -> dict[str, int]:
        return self.supervised.processes

    def log_signals(self) -> dict[str, dict[str, int]]:
        """Per service, how many log lines show each of LOG_SIGNALS (non-zero ones only)."""
        counts: dict[str, dict[str, int]] = {}
        for name in SERVICES:
            path = self.supervised.log_dir / f"{name}.log"
            lines = path.read_text(errors="replace").lower().splitlines() if path.exists() else []
            found = {
                label: count
                for label, needle in LOG_SIGNALS.items()
                if (count := sum(needle.lower() in line for line in lines))
            }
            if found:
                counts[name] = found
        return counts

    def log_lines(self, service: str, needle: str, *, limit: int = 5) -> list[str]:
        path = self.supervised.log_dir / f"{service}.log"
        lines = (
            [line for line in path.read_text(errors="replace").splitlines() if needle in line] if path.exists() else []
        )
        return [line[:600] for line in lines[:limit]]


# --- waiting through a fault: the API and PostgreSQL may answer nothing, or 503 --------------------------


def db_now(engine: Engine) -> datetime:
    with engine.connect() as connection:
        now: datetime = connection.execute(text("SELECT now()")).scalar_one()
    return now


def wait_stored(
    engine: Engine, scenarios: Sequence[uuid.UUID], *, at_least: int, timeout_seconds: float = 90.0
) -> None:
    """Until each scenario has ``at_least`` results stored (the load is under way)."""

    def counts() -> dict[uuid.UUID, int] | None:
        with engine.connect() as connection:
            rows: dict[uuid.UUID, int] = dict(
                connection.execute(
                    text(
                        "SELECT scenario_uuid, count(*) FROM scenario_results "
                        "WHERE scenario_uuid = ANY(CAST(:ids AS uuid[])) GROUP BY 1"
                    ),
                    {"ids": [str(s) for s in scenarios]},
                ).all()
            )
        return None if any(rows.get(s, 0) < at_least for s in scenarios) else rows

    wait_until(
        counts,
        timeout_seconds=timeout_seconds,
        what=f"{at_least} stored results of each of {len(scenarios)} scenarios",
        interval_seconds=0.3,
    )


def first_result_stored_after(engine: Engine, since: datetime, *, timeout_seconds: float = 90.0) -> float:
    """Seconds from ``since`` (PostgreSQL's clock) to the first result stored after it; waits for one."""

    def first() -> datetime | None:
        try:
            with engine.connect() as connection:
                value: datetime | None = connection.execute(
                    text("SELECT min(received_at) FROM scenario_results WHERE received_at > :since"), {"since": since}
                ).scalar_one()
                return value
        except SQLAlchemyError:
            return None

    stamp = wait_until(
        first, timeout_seconds=timeout_seconds, what="a result stored after the fault ended", interval_seconds=0.2
    )
    assert stamp is not None
    return (stamp - since).total_seconds()


def statuses(engine: Engine, scenarios: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[str, datetime]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT scenario_uuid, status, updated_at FROM scenarios "
                "WHERE scenario_uuid = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": [str(s) for s in scenarios]},
        ).all()
    return {row.scenario_uuid: (row.status, row.updated_at) for row in rows}


def wait_all_final(
    engine: Engine,
    scenarios: Sequence[uuid.UUID],
    since: datetime,
    *,
    timeout_seconds: float = 120.0,
    check_alive: Callable[[], None] = lambda: None,
) -> float:
    """Seconds from ``since`` until the last of ``scenarios`` became final (inactive or failed)."""

    def final() -> dict[uuid.UUID, tuple[str, datetime]] | None:
        check_alive()
        try:
            found = statuses(engine, scenarios)
        except SQLAlchemyError:
            return None
        return (
            found if len(found) == len(scenarios) and all(status in TERMINAL for status, _ in found.values()) else None
        )

    try:
        found = wait_until(
            final,
            timeout_seconds=timeout_seconds,
            what=f"every one of {len(scenarios)} scenarios final",
            interval_seconds=0.3,
        )
    except AssertionError as error:
        raise AssertionError(
            f"{error}; statuses now: { {str(s): v[0] for s, v in statuses(engine, scenarios).items()} }"
        ) from None
    assert found is not None
    return max(0.0, max((updated - since).total_seconds() for _, updated in found.values()))


# --- the figures ----------------------------------------------------------------------------------------


@dataclass
class ScenarioFigures:
    scenario_uuid: uuid.UUID
    status: str
    error: str | None
    published: set[Published]
    runs: int
    rows: list[Published]
    served: list[int]

    @property
    def lost(self) -> int:
        """Published but not stored, plus published frames the API does not serve."""
        return len(self.published - set(self.rows)) + len({p.frame_number for p in self.published} - set(self.served))

    @property
    def phantom(self) -> int:
        """Stored but never published."""
        return len(set(self.rows) - self.published)

    @property
    def dup_stored(self) -> int:
        return len(self.rows) - len(set(self.rows))

    @property
    def dup_served(self) -> int:
        return len(self.served) - len(set(self.served))


@dataclass
class Figures:
    case: str
    scenarios: list[ScenarioFigures]
    exits: dict[str, int]
    runner_restarts: int
    signals: dict[str, dict[str, int]]
    lag: dict[str, int]
    notes: list[str] = field(default_factory=list)

    @property
    def published(self) -> int:
        return sum(len(s.published) for s in self.scenarios)

    @property
    def stored(self) -> int:
        return sum(len(set(s.rows)) for s in self.scenarios)

    @property
    def served(self) -> int:
        return sum(len(set(s.served)) for s in self.scenarios)

    @property
    def dup(self) -> int:
        return sum(s.dup_stored + s.dup_served for s in self.scenarios)

    @property
    def lost(self) -> int:
        return sum(s.lost for s in self.scenarios)

    @property
    def stuck(self) -> int:
        return sum(1 for s in self.scenarios if s.status not in (*TERMINAL, "active"))

    def line(self, fault: str) -> str:
        exits = ", ".join(f"{name} {count}" for name, count in self.exits.items() if count) or "none"
        signals = (
            "; ".join(
                f"{name}: " + ", ".join(f"{label} {count}" for label, count in found.items())
                for name, found in self.signals.items()
            )
            or "none"
        )
        return (
            f"FAULT {self.case}: {fault}, published {self.published} stored {self.stored} served {self.served} "
            f"dup {self.dup} lost {self.lost} stuck {self.stuck} uncommitted {sum(self.lag.values())} "
            f"(scenarios {len(self.scenarios)}, "
            f"not inactive {sum(1 for s in self.scenarios if s.status != 'inactive')}); "
            f"services restarted by supervisord: {exits}; "
            f"runner restarts {self.runner_restarts}; log signals: {signals}"
            + "".join(f"; {note}" for note in self.notes)
        )

    def check(self) -> None:
        problems = []
        for s in self.scenarios:
            name = str(s.scenario_uuid)
            if s.status != "inactive" or s.error:
                problems.append(f"{name} ended {s.status} ({s.error})")
            if s.lost or s.phantom:
                problems.append(f"{name}: lost {s.lost}, stored but never published {s.phantom}")
            if s.dup_stored or s.dup_served:
                problems.append(f"{name}: stored twice {s.dup_stored}, served twice {s.dup_served}")
            if s.status == "inactive" and sorted(set(s.served)) != CAR_SAMPLED:
                problems.append(
                    f"{name}: served {len(set(s.served))} frames, not the {len(CAR_SAMPLED)} sampled frames of the file"
                )
        behind = {group: lag for group, lag in self.lag.items() if lag}
        if behind:
            problems.append(f"consumer groups that never committed every message: {behind}")
        assert not problems, "; ".join(problems)


# Run ids of results a test puts on the topic itself (poison): not what a runner published.
POISON_RUN_PREFIX = "poison"


def published_results(kafka: KafkaSettings) -> dict[uuid.UUID, set[Published]]:
    """What the runners published on the `results` topic, per scenario; values that are not results
    (poison a test produced) are left out."""
    reader = TopicReader(kafka, Topic.RESULTS)
    try:
        values = reader.read_to_end(timeout_seconds=60)
    finally:
        reader.close()
    published: dict[uuid.UUID, set[Published]] = {}
    for value in values:
        try:
            result = decode(FrameResult, value)
        except InvalidMessage:
            continue
        if not result.run_id.startswith(POISON_RUN_PREFIX):
            published.setdefault(result.scenario_uuid, set()).add(Published(result.run_id, result.frame_number))
    return published


def count(
    platform: FaultPlatform, case: str, scenarios: Sequence[uuid.UUID], *, settle_seconds: float = 30.0
) -> Figures:
    """The figures of ``scenarios`` once they are final: waits up to ``settle_seconds`` for the inbox
    to store the tail of what was published."""
    on_topic = published_results(platform.kafka)
    published = {s: on_topic.get(s, set()) for s in scenarios}

    def all_stored() -> bool:
        return all(published[s] <= set(stored(platform.engine, s)) for s in scenarios)

    try:
        wait_until(
            all_stored, timeout_seconds=settle_seconds, what="every published result stored", interval_seconds=0.5
        )
    except AssertionError:
        pass  # counted as lost below
    figures = []
    with platform.engine.connect() as connection:
        restarts = connection.execute(
            text("SELECT coalesce(sum(restart_count), 0) FROM workers WHERE scenario_uuid = ANY(CAST(:ids AS uuid[]))"),
            {"ids": [str(s) for s in scenarios]},
        ).scalar_one()
    for s in scenarios:
        body = platform.api.scenario(s)
        figures.append(
            ScenarioFigures(
                scenario_uuid=s,
                status=body["status"],
                error=body.get("error_reason"),
                published=published[s],
                runs=len({p.run_id for p in published[s]}),
                rows=stored(platform.engine, s),
                served=[frame["frame_number"] for frame in platform.api.frames(s)],
            )
        )
    lag = wait_no_lag(platform.kafka)
    return Figures(
        case=case,
        scenarios=figures,
        exits=platform.exits(),
        runner_restarts=int(restarts),
        signals=platform.log_signals(),
        lag=lag,
    )


# --- consumer groups: a consumer that stores but never commits is wedged too ---------------------------


def consumer_groups(prefix: str) -> dict[str, list[Topic]]:
    """The platform's consumer groups (as tests/faults/conftest.py names them) and their topics."""
    return {
        f"{prefix}vap-api-inbox": [Topic.RESULTS, Topic.SCENARIO_STATUS, Topic.EVENTS],
        f"{prefix}orchestrator": [Topic.INIT_SCENARIO],
        f"{prefix}local": [Topic.TO_DEPLOY],
    }


def group_lag(kafka: KafkaSettings) -> dict[str, int]:
    """Per group, the messages past its committed offsets (it only reads them: it joins no group)."""
    lag: dict[str, int] = {}
    for group, topics in consumer_groups(kafka.topic_prefix).items():
        consumer = make_consumer(kafka, group_id=group)
        try:
            partitions = []
            for topic in topics:
                name = f"{kafka.topic_prefix}{topic.value}"
                partitions += [
                    TopicPartition(name, p) for p in consumer.list_topics(name, timeout=10).topics[name].partitions
                ]
            behind = 0
            for committed in consumer.committed(partitions, timeout=10):
                low, high = consumer.get_watermark_offsets(committed, timeout=10)
                behind += high - (committed.offset if committed.offset >= 0 else low)
            lag[group.removeprefix(kafka.topic_prefix)] = behind
        finally:
            consumer.close()
    return lag


def wait_no_lag(kafka: KafkaSettings, *, timeout_seconds: float = 30.0) -> dict[str, int]:
    """Until every group committed everything (a last batch may still be committing); the lag then."""
    deadline = time.monotonic() + patience(timeout_seconds)
    while any((lag := group_lag(kafka)).values()) and time.monotonic() < deadline:
        time.sleep(1)
    return lag


# --- dead-letter topics ---------------------------------------------------------------------------------


def read_topic(kafka: KafkaSettings, topic: str, *, timeout_seconds: float = 30.0) -> list[Message]:
    """Every message of ``topic`` (a broker-side name) up to its partitions' high watermarks, headers included."""
    consumer = make_consumer(kafka, group_id=f"faults-reader-{uuid.uuid4().hex[:8]}")
    try:
        partitions = [
            TopicPartition(topic, p) for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        consumer.assign([TopicPartition(topic, tp.partition, OFFSET_BEGINNING) for tp in partitions])
        messages: list[Message] = []
        deadline = time.monotonic() + patience(timeout_seconds)
        while True:
            positions = {tp.partition: tp.offset for tp in consumer.position(partitions)}
            if all(ends[p] == 0 or positions[p] >= ends[p] for p in ends):
                return messages
            assert time.monotonic() < deadline, f"could not read {topic} to its end: {positions} of {ends}"
            for message in consumer.consume(num_messages=500, timeout=0.5):
                assert message.error() is None, message.error()
                messages.append(message)
    finally:
        consumer.close()


def headers_of(message: Message) -> dict[str, str]:
    found: dict[str, str] = {}
    headers = message.headers() or []
    for name, value in headers.items() if isinstance(headers, dict) else headers:
        found[name] = value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")
    return found


def utc_now() -> datetime:
    return datetime.now(UTC)


def api_reachable(url: str) -> bool:
    try:
        return httpx2.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx2.TransportError:
        return False


def dump_logs(paths: Iterable[Path], *, chars: int = 6000) -> None:
    for path in paths:
        if path.exists():
            print(f"----- {path} (tail) -----\n{path.read_text(errors='replace')[-chars:]}")


# --- one case: load, fault, recovery, figures ---------------------------------------------------------


@dataclass(frozen=True)
class FaultEnd:
    """What a fault did (for the figures line) and when it ended, on PostgreSQL's clock."""

    description: str
    ended_at: datetime
    recovery_from: str = "first result stored after the fault ended"
    # Scenarios registered while the fault lasted: they must run to their end too.
    registered_during: tuple[uuid.UUID, ...] = ()


def run_case(
    platform: FaultPlatform,
    report: Callable[[str], None],
    case: str,
    fault: Callable[[list[uuid.UUID]], FaultEnd],
    *,
    camera_url: str,
    load: int = 4,
    settings: dict[str, Any] | None = None,
    at_least_stored: int = 3,
    final_timeout_seconds: float = 150.0,
) -> Figures:
    """``load`` file scenarios; once each has results stored, ``fault``; then the recovery times, one
    more scenario registered after the fault, and the figures of all of them, checked."""
    scenarios = platform.start_load(load, camera_url, settings=settings, name=case)
    wait_stored(platform.engine, scenarios, at_least=at_least_stored)
    end = fault(scenarios)
    recovery = first_result_stored_after(platform.engine, end.ended_at)
    late = platform.api.init(camera_url, name=f"{case} after the fault")
    final = wait_all_final(
        platform.engine,
        [*scenarios, *end.registered_during],
        end.ended_at,
        timeout_seconds=final_timeout_seconds,
        check_alive=platform.supervised.check_alive,
    )
    late_final = wait_all_final(
        platform.engine,
        [late],
        end.ended_at,
        timeout_seconds=final_timeout_seconds,
        check_alive=platform.supervised.check_alive,
    )
    figures = count(platform, case, [*scenarios, *end.registered_during, late])
    during = f" (and {len(end.registered_during)} registered during the fault)" if end.registered_during else ""
    report(
        figures.line(
            f"{end.description}, recovered in {recovery:.1f}s ({end.recovery_from}), "
            f"every loaded scenario{during} final {final:.1f}s after, "
            f"a scenario registered after the fault final {late_final:.1f}s after"
        )
    )
    figures.check()
    return figures
