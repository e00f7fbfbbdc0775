"""Failover and restart (issue 13): how long delivery stops when the inbox crashes or the broker restarts.

20 virtual cameras x 5 fps publish results the way live runners do (``_api_common.play_cameras``)
into a real ``python -m vap_api.inbox`` on the local PostgreSQL; each round has its own schema and
topics, so no consumer group outlives its round.
  inbox   the inbox is killed with SIGKILL and a replacement started at once, as supervisord and
          Kubernetes do. Measured: kill -> first result stored by the replacement, for a static member
          (the replacement has the same VAP_KAFKA__INSTANCE_ID, as ./dev/services and the chart set it)
          and for a dynamic one (no id: the partitions come back only after the group's session
          timeout, VAP_INBOX__SESSION_TIMEOUT_SECONDS, 10 s), alternately, ROUNDS times each;
  broker  a private single KRaft broker (tests/faults/servers.py, started like ./dev/infra's) with the
          same inbox and cameras on it, killed with SIGKILL and started again at once. Measured from
          its start: answering metadata, an acks=all produce acknowledged, and the first result stored
          again (also from the kill), ROUNDS times.
Prints the figures (medians and every round) and writes bench/results/api.json (section "failover").
Run: .venv/bin/python -m bench.failover_bench
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, text

ROOT = Path(__file__).resolve().parent.parent
from bench._api_common import Child, Stack, isolated_stack, play_cameras, record, wait_for
from tests.faults.servers import KafkaBroker
from vap_common.db import make_engine
from vap_common.kafka import make_producer
from vap_common.schema import Scenario
from vap_common.topics import Topic, topic_name
from vap_runner.settings import RunnerSettings

ROUNDS = 3
SCENARIOS = 20
FPS = 5.0
LINGER_MS: int = RunnerSettings.model_fields["live_results_linger_ms"].default
STEADY_SECONDS = 3.0  # results flowing into the inbox before each fault


def _max_id(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT coalesce(max(id), 0) FROM scenario_results")).scalar_one())


def _stored_after(engine: Engine, after_id: int, *, timeout_seconds: float = 180.0) -> float:
    """When (monotonic) a row past ``after_id`` is stored; polled every 10 ms."""
    wait_for(
        lambda: _max_id(engine) > after_id,
        timeout_seconds=timeout_seconds,
        what=f"a result stored past id {after_id}",
        interval_seconds=0.01,
    )
    return time.monotonic()


class Round:
    """One round's schema, topics, cameras and inbox (``stack`` may point at a private broker)."""

    def __init__(self, stack: Stack, logs: Path, *, instance_id: str | None) -> None:
        self.stack, self.logs, self.instance_id = stack, logs, instance_id
        self.engine = make_engine(stack.database, pool_size=1)
        scenarios = [uuid.uuid4() for _ in range(SCENARIOS)]
        with self.engine.begin() as connection:
            connection.execute(
                insert(Scenario),
                [{"scenario_uuid": s, "camera_url": "rtsp://bench/cam", "status": "active"} for s in scenarios],
            )
        self.stop = threading.Event()
        self.cameras = play_cameras(stack, scenarios, self.stop, fps=FPS, linger_ms=LINGER_MS)
        self.inbox = self.start_inbox("inbox-first")
        self.wait_steady()

    def start_inbox(self, name: str) -> Child:
        extra = {"VAP_KAFKA__INSTANCE_ID": self.instance_id} if self.instance_id else {}
        return Child("vap_api.inbox", self.stack.env(**extra), self.logs / f"{name}-{uuid.uuid4().hex[:6]}.log")

    def wait_steady(self) -> None:
        _stored_after(self.engine, _max_id(self.engine))
        time.sleep(STEADY_SECONDS)

    def close(self) -> None:
        self.stop.set()
        self.cameras.join(30)
        self.inbox.stop()
        self.engine.dispose()


def inbox_failover(logs: Path, *, static: bool) -> float:
    """kill -9 -> first result stored by the replacement, in seconds."""
    with isolated_stack("failover") as stack:
        round_ = Round(stack, logs, instance_id=f"bench-inbox-{uuid.uuid4().hex[:8]}" if static else None)
        try:
            killed = time.monotonic()
            round_.inbox.kill()
            stored_before = _max_id(round_.engine)  # the killed one stores nothing more
            round_.inbox = round_.start_inbox("inbox-replacement")
            return _stored_after(round_.engine, stored_before) - killed
        finally:
            round_.close()


def _acknowledged(stack: Stack, *, timeout_seconds: float = 60.0) -> float:
    """When (monotonic) an acks=all produce to the broker is acknowledged."""
    producer = make_producer(stack.kafka, **{"message.timeout.ms": int(timeout_seconds * 1000)})
    done: list[bool] = []
    producer.produce(
        topic_name(Topic.RESULTS, stack.kafka.topic_prefix) + ".dlq",
        value=b"probe",
        on_delivery=lambda error, _: done.append(error is None),
    )
    producer.flush(timeout_seconds)
    if done != [True]:
        raise SystemExit("the restarted broker did not acknowledge a produce")
    return time.monotonic()


def broker_restarts(logs: Path) -> list[dict[str, float]]:
    rounds: list[dict[str, float]] = []
    with isolated_stack("restart") as shared, tempfile.TemporaryDirectory() as state:
        broker = KafkaBroker(state_dir=Path(state))
        broker.start()
        broker.wait_ready()
        prefix = shared.kafka.topic_prefix
        broker.create_topics(prefix)
        stack = Stack(shared.database, broker.settings(prefix))
        round_ = Round(stack, logs, instance_id=f"bench-inbox-{uuid.uuid4().hex[:8]}")
        try:
            for _ in range(ROUNDS):
                killed = time.monotonic()
                broker.kill()
                stored_before = _max_id(round_.engine)
                started = time.monotonic()
                broker.start()
                broker.wait_ready()
                metadata = time.monotonic()
                acknowledged = _acknowledged(stack)
                stored = _stored_after(round_.engine, stored_before)
                rounds.append(
                    {
                        "start_to_metadata_s": round(metadata - started, 2),
                        "start_to_produce_acknowledged_s": round(acknowledged - started, 2),
                        "start_to_first_stored_s": round(stored - started, 2),
                        "kill_to_first_stored_s": round(stored - killed, 2),
                    }
                )
                print(f"broker restart {len(rounds)}: {rounds[-1]}", flush=True)
                round_.wait_steady()
        finally:
            round_.close()
            broker.stop()
    return rounds


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def main() -> None:
    with tempfile.TemporaryDirectory() as logs_dir:
        logs = Path(logs_dir)
        failovers: dict[str, list[float]] = {"static": [], "dynamic": []}
        for index in range(ROUNDS):
            for kind, rounds in failovers.items():
                seconds = inbox_failover(logs, static=kind == "static")
                rounds.append(round(seconds, 2))
                print(
                    f"inbox failover {index + 1} ({kind} membership): "
                    f"first result stored {seconds:.2f} s after the kill",
                    flush=True,
                )
        restarts = broker_restarts(logs)
    figures: dict[str, Any] = {
        "load": f"{SCENARIOS} cameras x {FPS:g} fps",
        "inbox_kill_to_first_stored_static_median_s": _median(failovers["static"]),
        "inbox_kill_to_first_stored_dynamic_median_s": _median(failovers["dynamic"]),
        "inbox_static_vs_dynamic": round(_median(failovers["static"]) / _median(failovers["dynamic"]), 3),
        "inbox_rounds_s": failovers,
        **{f"broker_{key}_median": _median([r[key] for r in restarts]) for key in restarts[0]},
        "broker_rounds": restarts,
    }
    record("failover", figures)


if __name__ == "__main__":
    main()
