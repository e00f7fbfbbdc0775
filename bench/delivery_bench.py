"""Delivery latency (issue 13): frame capture -> row stored in PostgreSQL -> visible to a polling client.

N virtual cameras (1, 10, 20) each publish one mock result every 200 ms (5 fps) the way a runner does
(its producer settings: idempotent, acks=all, linger as a live runner's VAP_LIVE_RESULTS_LINGER_MS), with the
capture time as the result's timestamp. A real `python -m vap_api.inbox` stores them and a real
`python -m vap_api` serves them. Measured, per level, for SECONDS:
  stored   capture -> the row is visible in scenario_results (a reader polls every 10 ms);
  visible  capture -> GET /api/v1/prediction returns it to a client following next_cursor every
           100 ms (up to 5 scenarios are followed, so the client itself does not load the 2 cores);
  bare     the same Kafka in the same run: produce -> consume by a plain consumer (linger 0), and with
           the runner's linger, the floor any pipeline on this broker has.
Goal (issue 13): stored p99 < 300 ms and visible p99 < 500 ms at 20 scenarios x 5 fps.
Prints the figures and writes bench/results/api.json (section "delivery").
Run: .venv/bin/python -m bench.delivery_bench
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import insert, text

from bench._api_common import (
    Child,
    Stack,
    api_ready,
    isolated_stack,
    percentile,
    play_cameras,
    record,
    wait_for,
    warm_up,
)
from dev.platform_stack import create_api_key, free_port
from vap_common.db import make_engine
from vap_common.kafka import make_consumer, make_producer
from vap_common.schema import Scenario
from vap_common.tenants import DEFAULT_TENANT
from vap_common.topics import Topic, topic_name
from vap_runner.settings import RunnerSettings

LEVELS = (1, 10, 20)
FPS = 5.0
SECONDS = 20.0
RUNNER_LINGER_MS: int = RunnerSettings.model_fields["live_results_linger_ms"].default
FOLLOWED = 5


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 0.5) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
    }


def stored_latencies(stack: Stack, stop: threading.Event, out: list[float]) -> threading.Thread:
    def poll() -> None:
        engine = make_engine(stack.database, pool_size=1)
        with engine.connect() as connection:
            last = connection.execute(
                text("SELECT coalesce(max(id), 0) FROM scenario_results")
            ).scalar_one()  # earlier levels' rows
            connection.commit()
            while not stop.is_set():
                rows = connection.execute(
                    text("SELECT id, timestamp FROM scenario_results WHERE id > :last ORDER BY id"), {"last": last}
                ).all()
                connection.commit()
                now = datetime.now(UTC)
                for row in rows:
                    out.append((now - row.timestamp).total_seconds())
                    last = max(last, row.id)
                stop.wait(0.01)
        engine.dispose()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return thread


def visible_latencies(
    api_url: str, api_key: str, scenarios: list[uuid.UUID], stop: threading.Event, out: list[float]
) -> threading.Thread:
    def poll() -> None:
        cursors: dict[uuid.UUID, str | None] = dict.fromkeys(scenarios)
        headers = {"Authorization": f"Bearer {api_key}"}
        with httpx2.Client(base_url=api_url, timeout=10, headers=headers) as client:
            while not stop.is_set():
                for scenario in scenarios:
                    params: dict[str, Any] = {"limit": 1000} | (
                        {"cursor": cursor} if (cursor := cursors[scenario]) else {}
                    )
                    body = client.get(f"/api/v1/prediction/{scenario}", params=params).json()
                    now = datetime.now(UTC)
                    out.extend(
                        (now - datetime.fromisoformat(result["timestamp"])).total_seconds()
                        for result in body["results"]
                    )
                    cursors[scenario] = body["next_cursor"]
                stop.wait(0.1)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return thread


def bare_latency(stack: Stack, *, linger_ms: int, count: int = 200) -> dict[str, float]:
    """produce -> consume on this broker, no inbox, no database: one message every 10 ms."""
    topic = topic_name(
        Topic.SCENARIO_STATUS, stack.kafka.topic_prefix
    )  # its values are not results: the inbox only dead-letters them
    consumer = make_consumer(
        stack.kafka, group_id=f"bench-bare-{uuid.uuid4().hex[:6]}", **{"auto.offset.reset": "latest"}
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.1)
    producer = make_producer(stack.kafka, **{"linger.ms": linger_ms})
    warm_up(producer, stack.kafka.topic_prefix, uuid.uuid4())  # its key is not one of those measured
    latencies: list[float] = []
    sent: dict[bytes, float] = {}
    for index in range(count):
        key = f"{index}".encode()
        sent[key] = time.monotonic()
        producer.produce(topic, key=key, value=b"x")
        producer.poll(0)
        for message in consumer.consume(100, 0.01):
            if message.error() is None and message.key() in sent:
                latencies.append(time.monotonic() - sent.pop(message.key()))
    producer.flush(10)
    deadline = time.monotonic() + 10
    while sent and time.monotonic() < deadline:
        for message in consumer.consume(100, 0.1):
            if message.error() is None and message.key() in sent:
                latencies.append(time.monotonic() - sent.pop(message.key()))
    consumer.close()
    return summary(latencies)


def level(stack: Stack, api_url: str, count: int) -> dict[str, Any]:
    engine = make_engine(stack.database, pool_size=1)
    scenarios = [uuid.uuid4() for _ in range(count)]
    with engine.begin() as connection:
        connection.execute(
            insert(Scenario),
            [{"scenario_uuid": s, "camera_url": "rtsp://bench/cam", "status": "active"} for s in scenarios],
        )
    engine.dispose()
    stop = threading.Event()
    stored: list[float] = []
    visible: list[float] = []
    threads = [
        stored_latencies(stack, stop, stored),
        visible_latencies(
            api_url, create_api_key(stack.env(), tenant=DEFAULT_TENANT), scenarios[:FOLLOWED], stop, visible
        ),
        play_cameras(stack, scenarios, stop, fps=FPS, linger_ms=RUNNER_LINGER_MS),
    ]
    time.sleep(SECONDS)
    stop.set()
    for thread in threads:
        thread.join(30)
    return {"scenarios": count, "fps_each": FPS, "stored": summary(stored), "visible": summary(visible)}


def main() -> None:
    with isolated_stack("delivery") as stack, tempfile.TemporaryDirectory() as logs:
        port = free_port()
        inbox = Child("vap_api.inbox", stack.env(VAP_INBOX__SESSION_TIMEOUT_SECONDS="6"), Path(logs) / "inbox.log")
        api = Child("vap_api", stack.env(VAP_PORT=str(port), VAP_ACCESS_LOG="false"), Path(logs) / "api.log")
        api_url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: api_ready(api_url), timeout_seconds=60, what="the API")
            time.sleep(3)  # the inbox joins its group
            figures: dict[str, Any] = {
                "bare_linger_0": bare_latency(stack, linger_ms=0),
                f"bare_linger_{RUNNER_LINGER_MS}": bare_latency(stack, linger_ms=RUNNER_LINGER_MS),
            }
            for count in LEVELS:
                print(f"delivery: {count} scenario(s) x {FPS:g} fps for {SECONDS:g} s ...", flush=True)
                figures[f"scenarios_{count}"] = level(stack, api_url, count)
        finally:
            api.stop()
            inbox.stop()
    record("delivery", figures)


if __name__ == "__main__":
    main()
