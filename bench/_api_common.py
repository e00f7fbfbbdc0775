"""Shared pieces of the API benchmarks: an isolated schema + topic prefix, processes, percentiles, results file."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import text

from vap_common.contracts import Detection, FrameResult, StatusEvent, encode
from vap_common.db import make_engine, migrate
from vap_common.kafka import ensure_topics, make_admin, make_producer
from vap_common.lifecycle import ScenarioStatus
from vap_common.settings import DatabaseServiceSettings, DatabaseSettings, KafkaSettings
from vap_common.topics import Topic, all_topic_names, topic_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "api.json"
_DETECTIONS = [Detection(class_name="person", confidence=0.9, bbox=(10.0, 20.0, 110.0, 220.0))]


@dataclass(frozen=True)
class Stack:
    database: DatabaseSettings
    kafka: KafkaSettings

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of a vap_api process pointed at this schema and topic prefix."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("VAP_")}
        env.update(
            VAP_DATABASE__URL=self.database.url,
            VAP_DATABASE__SCHEMA_NAME=self.database.schema_name or "",
            VAP_KAFKA__BOOTSTRAP_SERVERS=self.kafka.bootstrap_servers,
            VAP_KAFKA__TOPIC_PREFIX=self.kafka.topic_prefix,
            VAP_METRICS_PORT="0",
            VAP_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env


@contextmanager
def isolated_stack(name: str, *, log_append_time_topics: tuple[str, ...] = (), partitions: int = 3) -> Iterator[Stack]:
    """A fresh schema (migrated to head) and topic prefix on the local stack; both removed after.

    Topics named in ``log_append_time_topics`` (logical names) get broker-side timestamps, so a
    consumer reads the time the broker appended (= acknowledged) each record.
    """
    base = DatabaseServiceSettings()
    suffix = uuid.uuid4().hex[:8]
    schema = f"bench_{name}_{suffix}"
    database = DatabaseSettings(url=base.database.url, schema_name=schema, pool_size=10)
    kafka = base.kafka.model_copy(update={"topic_prefix": f"bench-{name}-{suffix}."})
    admin_engine = make_engine(DatabaseSettings(url=base.database.url), pool_size=1)
    with admin_engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    migrate(database)
    admin = make_admin(kafka)
    special = [f"{kafka.topic_prefix}{topic}" for topic in log_append_time_topics]
    if special:
        futures = admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=partitions,
                    replication_factor=1,
                    config={"message.timestamp.type": "LogAppendTime"},
                )
                for topic in special
            ]
        )
        for future in futures.values():
            future.result(30)
    names = all_topic_names(kafka.topic_prefix)
    ensure_topics(admin, names, partitions=partitions)
    try:
        yield Stack(database, kafka)
    finally:
        _delete_topics(admin, names)
        with admin_engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin_engine.dispose()


def _delete_topics(admin: AdminClient, names: list[str]) -> None:
    for future in admin.delete_topics(names).values():
        try:
            future.result(30)
        except Exception as error:  # noqa: BLE001 - cleanup is best effort
            print(f"warning: could not delete a topic: {error}", file=sys.stderr)


class Child:
    """``python -m <module>`` with its output in a log file; stopped with SIGTERM."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module], env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(30)
        self._log.close()

    def kill(self) -> None:
        """SIGKILL, as a crash: no clean shutdown, no leaving the consumer group."""
        self.popen.kill()
        self.popen.wait(30)
        self._log.close()


def play_cameras(
    stack: Stack, scenarios: list[uuid.UUID], stop: threading.Event, *, fps: float, linger_ms: int
) -> threading.Thread:
    """One thread playing every camera the way a live runner publishes (idempotent, acks=all, its
    linger): each sends a result every 1/fps s, with the capture time as its timestamp."""

    def play() -> None:
        producer = make_producer(stack.kafka, **{"linger.ms": linger_ms})
        warm_up(producer, stack.kafka.topic_prefix, scenarios[0])
        topic = topic_name(Topic.RESULTS, stack.kafka.topic_prefix)
        run_id = uuid.uuid4().hex[:16]
        started = time.monotonic()
        frame = 0
        while not stop.is_set():
            due = started + frame / fps
            if (wait := due - time.monotonic()) > 0:
                stop.wait(wait)
            for scenario in scenarios:
                result = FrameResult(
                    scenario_uuid=scenario,
                    run_id=run_id,
                    frame_number=frame,
                    detections=_DETECTIONS,
                    timestamp=datetime.now(UTC),
                )
                producer.produce(topic, key=str(scenario), value=encode(result))
            producer.poll(0)
            frame += 1
        producer.flush(30)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread


def warm_up(producer: Producer, topic_prefix: str, scenario_uuid: uuid.UUID) -> None:
    """Wait until an idempotent producer has its producer id: until then (0.2-0.5 s here) it sends
    nothing, which is a process start, not a delivery latency. A runner gets its id while it opens its
    source. Sends an `active` the inbox ignores (the scenario is active already)."""
    topic = topic_name(Topic.SCENARIO_STATUS, topic_prefix)
    producer.produce(
        topic,
        key=str(scenario_uuid),
        value=encode(StatusEvent(scenario_uuid=scenario_uuid, status=ScenarioStatus.ACTIVE)),
    )
    if producer.flush(30) != 0:
        raise SystemExit("Kafka did not acknowledge the warm-up message")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (fraction in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]


def wait_for(predicate: Any, *, timeout_seconds: float, what: str, interval_seconds: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval_seconds)


def record(section: str, figures: dict[str, Any], *, results: Path = RESULTS) -> None:
    """Merge ``figures`` under ``section`` into ``results`` (bench/results/api.json) and print them."""
    results.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(results.read_text()) if results.exists() else {}
    data[section] = {
        **figures,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }
    results.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps({section: data[section]}, indent=2))


def api_ready(base_url: str) -> bool:
    """The API at ``base_url`` answers /readyz with 200."""
    try:
        return httpx2.get(f"{base_url}/readyz", timeout=2).status_code == 200
    except httpx2.TransportError:
        return False
