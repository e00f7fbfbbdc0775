"""Outbox latency (issue 3): commit of a scenario → its command acknowledged by the broker.

1,000 scenarios are created one after another through the API's service function (scenario row +
outbox row in one transaction) while a real relay process (`python -m vap_api.outbox`) runs. The
`init_scenario` topic of this run stores broker-side timestamps (LogAppendTime), so each record
carries the time the broker appended it; latency = that time - the moment the COMMIT was sent
(a SQLAlchemy "commit" event). Broker timestamps are whole milliseconds, so a single figure is
+-1 ms (the minimum can come out slightly negative).
Also measured: how fast one relay drains a backlog of 1,000 rows created while it was stopped.
Goal: p99 < 50 ms. Prints the figures and writes bench/results/api.json (section "outbox").
Run: .venv/bin/python -m bench.api_outbox
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import event, text

from bench._api_common import Child, Stack, isolated_stack, percentile, record, wait_for
from vap_api.scenarios.service import Quota, StartQueue, create_scenario
from vap_common.camera_secrets import CameraKeyring
from vap_common.contracts import DetectorSpec
from vap_common.db import make_engine, make_session_factory
from vap_common.kafka import make_consumer
from vap_common.tenants import DEFAULT_TENANT
from vap_common.topics import Topic, topic_name

SCENARIOS = 1000
WARM_UP = 20
# Nothing starts the scenarios here: the API's admission limit would refuse all but the first few.
NO_KEYS = CameraKeyring({})  # the cameras have no credentials
UNLIMITED = StartQueue(max_starting=1_000_000, retry_after_seconds=1)


def _create(factory, commits: list[float], count: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Create ``count`` scenarios one by one; returns when each one's COMMIT was sent."""
    committed: dict[str, float] = {}
    for index in range(count):
        with factory() as session:
            created = create_scenario(
                session=session,
                tenant=DEFAULT_TENANT,
                camera_url=f"rtsp://cam{index}.example/stream",
                keyring=NO_KEYS,
                detector=DetectorSpec(),
                start_queue=UNLIMITED,
                quota=Quota(max_scenarios=1_000_000_000, retry_after_seconds=1),
            )
        committed[str(created.scenario_uuid)] = commits[-1]
    return committed


def _read_acks(stack: Stack, expected: set[str], timeout_seconds: float = 120.0) -> dict[str, float]:
    """Broker append time (seconds) of each expected key on init_scenario."""
    consumer = make_consumer(stack.kafka, group_id=f"bench-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic_name(Topic.INIT_SCENARIO, stack.kafka.topic_prefix)])
    acked: dict[str, float] = {}
    deadline = time.monotonic() + timeout_seconds
    try:
        while not expected <= acked.keys():
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(expected & acked.keys())} of {len(expected)} commands reached the broker")
            for message in consumer.consume(500, 1.0):
                if message.error() is None:
                    acked.setdefault(message.key().decode(), message.timestamp()[1] / 1000.0)
    finally:
        consumer.close()
    return acked


def _unpublished(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return int(
            connection.execute(text("SELECT count(*) FROM outbox_scenario WHERE published_at IS NULL")).scalar_one()
        )


def main() -> None:
    with (
        isolated_stack("outbox", log_append_time_topics=(Topic.INIT_SCENARIO.value,)) as stack,
        tempfile.TemporaryDirectory() as logs,
    ):
        engine = make_engine(stack.database, pool_size=2)
        commits: list[float] = []
        event.listen(engine, "commit", lambda _connection: commits.append(time.time()))  # just before COMMIT is sent
        factory = make_session_factory(engine)
        env = stack.env(VAP_RELAY__POLL_INTERVAL_SECONDS="1.0")

        # (1) Backlog: rows written while no relay runs, then one relay drains them.
        _create(factory, commits, SCENARIOS)
        relay = Child("vap_api.outbox", env, Path(logs) / "relay-backlog.log")
        started = time.perf_counter()
        wait_for(lambda: _unpublished(engine) == 0, timeout_seconds=120, what="the backlog to drain")
        drain_seconds = time.perf_counter() - started  # includes the relay's start-up
        relay.stop()

        # (2) Latency: one scenario at a time while the relay listens.
        relay = Child("vap_api.outbox", env, Path(logs) / "relay-latency.log")
        warm = _create(factory, commits, WARM_UP)
        _read_acks(stack, set(warm))
        committed = _create(factory, commits, SCENARIOS)
        created_seconds = max(committed.values()) - min(committed.values())
        acked = _read_acks(stack, set(committed))
        relay.stop()
        engine.dispose()

    latencies_ms = [(acked[key] - committed[key]) * 1000.0 for key in committed]
    record(
        "outbox",
        {
            "scenarios": SCENARIOS,
            "commit_to_broker_ack_ms_p50": round(percentile(latencies_ms, 0.50), 2),
            "commit_to_broker_ack_ms_p99": round(percentile(latencies_ms, 0.99), 2),
            "commit_to_broker_ack_ms_min": round(min(latencies_ms), 2),
            "commit_to_broker_ack_ms_max": round(max(latencies_ms), 2),
            "goal_p99_ms": 50,
            "creation_rate_per_s": round(SCENARIOS / created_seconds, 1),
            "backlog_drain_rows_per_s_one_relay_incl_startup": round(SCENARIOS / drain_seconds, 1),
        },
    )


if __name__ == "__main__":
    main()
