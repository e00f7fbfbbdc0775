"""The three entry points as real processes: API over HTTP → outbox relay → Kafka → inbox → API."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable

import httpx2

from tests.conftest import free_port
from tests.helpers import CAMERA_KEYS, consume, wait_until
from tests.integration.api.api_test_support import Process, bearer, encoded_frames, produce
from vap_common.camera_secrets import CameraKeyring
from vap_common.contracts import ScenarioCommand, StatusEvent, decode, encode
from vap_common.lifecycle import ScenarioStatus
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, topic_name

SECRET = "E2e-pa55"


def test_scenario_round_trip_through_api_relay_and_inbox_processes(
    start_process: Callable[..., Process], kafka_settings: KafkaSettings, api_key: str
) -> None:
    auth = bearer(api_key)
    port = free_port()
    api = start_process("vap_api", name="api", extra_env={"VAP_PORT": str(port)})
    relay = start_process("vap_api.outbox", name="relay")
    inbox = start_process("vap_api.inbox", name="inbox")
    base = f"http://127.0.0.1:{port}"
    prefix = kafka_settings.topic_prefix

    def api_up() -> bool:
        try:
            return httpx2.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx2.TransportError:
            return False

    wait_until(api_up, timeout_seconds=60, interval_seconds=0.2, what="the API to be ready")
    url = f"rtsp://viewer:{SECRET}@cam.example:554/live"
    created = httpx2.post(
        f"{base}/api/v1/scenario/init", json={"camera_url": url, "detector": {"name": "mock"}}, headers=auth, timeout=10
    )
    assert created.status_code == 201
    scenario_uuid = uuid.UUID(created.json()["scenario_uuid"])

    [start] = consume(kafka_settings, topic_name(Topic.INIT_SCENARIO, prefix), expected=1, timeout_seconds=30)
    command = decode(ScenarioCommand, start.value())
    assert (command.scenario_uuid, command.command) == (scenario_uuid, "start")
    # Sent sealed (vap_common.camera_secrets): only the operator's key opens the real URL, for the runner.
    assert SECRET not in command.camera_url and CameraKeyring.parse([CAMERA_KEYS]).open(command.camera_url) == url

    status_topic = topic_name(Topic.SCENARIO_STATUS, prefix)
    events = [
        StatusEvent(scenario_uuid=scenario_uuid, status=status)
        for status in (ScenarioStatus.IN_STARTUP_PROCESSING, ScenarioStatus.ACTIVE)
    ]
    produce(kafka_settings, status_topic, [(str(scenario_uuid), encode(event)) for event in events])
    produce(kafka_settings, topic_name(Topic.RESULTS, prefix), encoded_frames(scenario_uuid, range(5)))

    def prediction() -> dict[str, object] | None:
        body: dict[str, object] = httpx2.get(
            f"{base}/api/v1/prediction/{scenario_uuid}", headers=auth, timeout=5
        ).json()
        return body if body["status"] == "active" and len(body["results"]) == 5 else None  # type: ignore[arg-type]

    assert wait_until(prediction, timeout_seconds=60, interval_seconds=0.2, what="results and status through the inbox")
    shutdown = httpx2.post(f"{base}/api/v1/scenario/{scenario_uuid}/shutdown", headers=auth, timeout=10)
    assert shutdown.status_code == 202 and shutdown.json()["status"] == "init_shutdown"
    commands = consume(kafka_settings, topic_name(Topic.INIT_SCENARIO, prefix), expected=2, timeout_seconds=30)
    assert [decode(ScenarioCommand, message.value()).command for message in commands] == ["start", "shutdown"]
    produce(
        kafka_settings,
        status_topic,
        [(str(scenario_uuid), encode(StatusEvent(scenario_uuid=scenario_uuid, status=ScenarioStatus.INACTIVE)))],
    )
    wait_until(
        lambda: (
            httpx2.get(f"{base}/api/v1/scenario/{scenario_uuid}", headers=auth, timeout=5).json()["status"]
            == "inactive"
        ),
        timeout_seconds=30,
        what="the inactive status",
    )
    shown = httpx2.get(f"{base}/api/v1/scenario/{scenario_uuid}", headers=auth, timeout=5).json()
    metrics = httpx2.get(f"{base}/metrics", timeout=5).text

    assert shown["camera_url"] == "rtsp://viewer:***@cam.example:554/live"
    assert "vap_http_request_seconds_count" in metrics
    # Uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why it stopped.
    assert [process.terminate() for process in (api, relay, inbox)] == [-signal.SIGTERM, 0, 0]
    assert "Application shutdown complete" in api.log_text()
    for process in (api, relay, inbox):
        text = process.log_text()
        assert SECRET not in text, process.log_path.name
        assert any(json.loads(line).get("service") for line in text.splitlines() if line.startswith("{"))
