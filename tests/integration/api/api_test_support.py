"""Helpers of the API integration tests (real PostgreSQL, Kafka and processes)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import patience, wait_until
from vap_api.auth.keys import Scope, create_key
from vap_common.consuming import ConsumerLoop
from vap_common.contracts import Detection, FrameResult, encode
from vap_common.kafka import make_producer
from vap_common.lifecycle import ScenarioStatus
from vap_common.schema import Scenario
from vap_common.settings import KafkaSettings
from vap_common.tenants import DEFAULT_TENANT

ROOT = Path(__file__).resolve().parents[3]


def produce(settings: KafkaSettings, topic: str, values: Iterable[tuple[str, bytes]]) -> None:
    """Produce (key, value) pairs and wait for the broker's acknowledgement."""
    producer = make_producer(settings)
    for key, value in values:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def frame(scenario_uuid: uuid.UUID, frame_number: int, *, run_id: str = "run-1", people: int = 1) -> FrameResult:
    detections = [
        Detection(class_name="person", confidence=0.5 + index / 100, bbox=(index, 2.0, 30.0, 40.0))
        for index in range(people)
    ]
    return FrameResult(
        scenario_uuid=scenario_uuid,
        run_id=run_id,
        frame_number=frame_number,
        detections=detections,
        timestamp=datetime(2026, 11, 25, 12, 0, frame_number % 60, tzinfo=UTC),
    )


def encoded_frames(scenario_uuid: uuid.UUID, frames: Iterable[int], **options: Any) -> list[tuple[str, bytes]]:
    return [(str(scenario_uuid), encode(frame(scenario_uuid, number, **options))) for number in frames]


def issue_key(
    factory: sessionmaker[Session],
    *,
    tenant: str = DEFAULT_TENANT,
    scopes: Iterable[Scope] = (Scope.SCENARIOS_READ, Scope.SCENARIOS_WRITE),
) -> str:
    """A new API key of ``tenant``, as `vap-admin keys create` makes it."""
    with factory() as session:
        return create_key(session=session, tenant=tenant, scopes=frozenset(scopes))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def add_scenario(
    factory: sessionmaker[Session],
    *,
    status: ScenarioStatus = ScenarioStatus.INIT_STARTUP,
    camera_url: str = "rtsp://cam.example/stream",
) -> uuid.UUID:
    """A scenario row written directly (no outbox row), in ``status``."""
    scenario_uuid = uuid.uuid4()
    with factory() as session, session.begin():
        session.execute(
            insert(Scenario).values(scenario_uuid=scenario_uuid, camera_url=camera_url, status=status.value)
        )
    return scenario_uuid


def run_loop_until(loop: ConsumerLoop, total: int, *, attempts: int = 60) -> int:
    """Run ``loop`` batch by batch until ``total`` messages were handled."""
    seen = 0
    for _ in range(attempts):
        seen += loop.run_once()
        if seen >= total:
            return seen
    raise AssertionError(f"only {seen} of {total} messages consumed")


@contextmanager
def serve(app: FastAPI) -> Iterator[int]:
    """``app`` served by a real uvicorn on a free loopback port (in a thread); yields the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout_seconds=30, what="uvicorn started")
        assert server.started, "uvicorn exited at start"
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


class Process:
    """A vap_api entry point run as ``python -m <module>``, its JSON log lines in a file."""

    def __init__(self, python: str, module: str, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            [python, "-m", module], env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, timeout_seconds: float = 60.0) -> None:
        def seen() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited with {self.popen.returncode}:\n{self.log_text()[-3000:]}")
            return text in self.log_text()

        wait_until(
            seen, timeout_seconds=timeout_seconds, interval_seconds=0.2, what=f"{text!r} in {self.log_path.name}"
        )

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when a node dies."""
        self.popen.kill()
        self.popen.wait(30)
        self._log.close()

    def terminate(self, *, timeout_seconds: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(patience(timeout_seconds))
        self._log.close()
        return code

    def ensure_stopped(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(30)
        self._log.close()


# Prediction rows stored directly (as the inbox would) and read back through GET /prediction.
_INSERT = text(
    "INSERT INTO scenario_results (scenario_uuid, run_id, frame_number, detections, timestamp) "
    "VALUES (:scenario_uuid, :run_id, :frame_number, CAST(:detections AS jsonb), :timestamp)"
)
# Are all of the scenario's rows below the snapshot xmin, i.e. servable? Another session of the
# shared cluster may still run a transaction older than ours for a moment.
_SERVABLE = text(
    "SELECT coalesce(bool_and(stored_xact < pg_snapshot_xmin(pg_current_snapshot())), true) "
    "FROM scenario_results WHERE scenario_uuid = :u"
)


def store(
    engine: Engine, scenario_uuid: uuid.UUID, frames: Iterable[int], *, run_id: str = "run-1", label: str = "person"
) -> None:
    """Store the frames in one transaction, and wait until the API may serve them."""
    rows = [
        {
            "scenario_uuid": scenario_uuid,
            "run_id": run_id,
            "frame_number": number,
            "detections": json.dumps([{"class": label, "confidence": 0.75, "bbox": [1.0, 2.0, 3.5, 4.0]}]),
            "timestamp": f"2026-11-25T12:00:00.{number + 1:06d}Z",
        }
        for number in frames
    ]
    with engine.begin() as connection:
        connection.execute(_INSERT, rows)
    wait_servable(engine, scenario_uuid)


def wait_servable(engine: Engine, scenario_uuid: uuid.UUID) -> None:
    """Wait until every committed row of the scenario is below the snapshot xmin (the API may serve it)."""

    def servable() -> bool:
        with engine.connect() as connection:
            return bool(connection.execute(_SERVABLE, {"u": scenario_uuid}).scalar_one())

    wait_until(servable, timeout_seconds=10, interval_seconds=0.02, what="the stored rows below the snapshot xmin")


def page(client: TestClient, scenario_uuid: uuid.UUID, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/v1/prediction/{scenario_uuid}", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def follow(
    client: TestClient, scenario_uuid: uuid.UUID, *, cursor: str | None = None, limit: int, **params: Any
) -> tuple[list[list[dict[str, Any]]], str]:
    """Every page from ``cursor`` until a short one; returns the pages and the cursor to go on with."""
    pages: list[list[dict[str, Any]]] = []
    while True:
        body = page(client, scenario_uuid, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        pages.append(body["results"])
        cursor = body["next_cursor"]
        assert isinstance(cursor, str) and cursor
        if len(body["results"]) < limit:
            return pages, cursor


def identities(results: Iterable[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(item["run_id"], item["frame_number"]) for item in results]
