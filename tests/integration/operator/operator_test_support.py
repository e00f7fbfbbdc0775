"""Helpers of the operator integration tests: processes, Kafka, Kubernetes (real servers only)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from tests.helpers import TopicReader, patience, wait_until
from vap_common.contracts import Contract, DetectorSpec, ScenarioCommand, StatusEvent, decode, encode
from vap_common.kafka import make_producer
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, topic_name

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = ROOT / "operator" / "manifests"
STAND_IN_RUNNER = Path(__file__).resolve().parent / "stand_in_runner.py"


# --- Kafka ------------------------------------------------------------------------------------------


def produce(kafka: KafkaSettings, topic: Topic, messages: Iterable[Contract]) -> None:
    producer = make_producer(kafka)
    name = topic_name(topic, kafka.topic_prefix)
    for message in messages:
        producer.produce(name, key=str(message.scenario_uuid), value=encode(message))  # type: ignore[attr-defined]
    assert producer.flush(30) == 0


def start(scenario_uuid: uuid.UUID, camera_url: str = "rtsp://cam.example/stream", **detector: Any) -> ScenarioCommand:
    return ScenarioCommand(
        scenario_uuid=scenario_uuid, command="start", camera_url=camera_url, detector=DetectorSpec(**detector)
    )


def shutdown(scenario_uuid: uuid.UUID, camera_url: str = "rtsp://cam.example/stream") -> ScenarioCommand:
    return ScenarioCommand(scenario_uuid=scenario_uuid, command="shutdown", camera_url=camera_url)


class StatusLog:
    """Every StatusEvent on scenario_status so far (polled on demand)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._reader = TopicReader(kafka, Topic.SCENARIO_STATUS)
        self.events: list[StatusEvent] = []

    def poll(self, seconds: float = 0.5) -> list[StatusEvent]:
        self._reader.poll(seconds)
        self.events = [decode(StatusEvent, value) for value in self._reader.values]
        return self.events

    def of(self, scenario_uuid: uuid.UUID) -> list[tuple[str, str | None]]:
        return [
            (event.status.value, event.reason.value if event.reason else None)
            for event in self.events
            if event.scenario_uuid == scenario_uuid
        ]

    def steps(self, scenario_uuid: uuid.UUID) -> list[tuple[str, str | None]]:
        """The events of a scenario with repeats collapsed (a replay may re-publish a step: harmless)."""
        steps: list[tuple[str, str | None]] = []
        for event in self.of(scenario_uuid):
            if not steps or steps[-1] != event:
                steps.append(event)
        return steps

    def wait_for(
        self, scenario_uuid: uuid.UUID, expected: list[tuple[str, str | None]], *, timeout_seconds: float = 30.0
    ) -> None:
        """Wait until the scenario's steps (repeats collapsed) start with ``expected``."""

        def arrived() -> bool:
            self.poll()
            return self.steps(scenario_uuid)[: len(expected)] == expected

        wait_until(
            arrived,
            timeout_seconds=timeout_seconds,
            interval_seconds=0,
            what=f"status events {expected} of {scenario_uuid}",
        )

    def close(self) -> None:
        self._reader.close()


# --- processes --------------------------------------------------------------------------------------


class Process:
    """A vap-operator subprocess with its log in a file (shown when a test fails)."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path, args: list[str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "vap_operator", *(args or [])],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_seconds: float = 30.0) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(patience(timeout_seconds))
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(10)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)
        self._log.close()


def wait_http_ok(url: str, process: Process, timeout_seconds: float = 30.0) -> None:
    def ok() -> bool:
        assert process.alive(), f"{process.name} exited early:\n{process.log()[-4000:]}"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_until(ok, timeout_seconds=timeout_seconds, interval_seconds=0.1, what=f"{url} of {process.name}")


# --- Kubernetes -------------------------------------------------------------------------------------


def kube_client(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


def rendered_manifests(namespace: str, names: Iterable[str]) -> list[dict[str, Any]]:
    """The operator's manifests for ``namespace`` (what `namespace:` in the kustomization does)."""
    documents: list[dict[str, Any]] = []
    for name in names:
        for document in yaml.safe_load_all((MANIFESTS / name).read_text()):
            document.setdefault("metadata", {})["namespace"] = namespace
            for subject in document.get("subjects", []):
                subject["namespace"] = namespace
            documents.append(document)
    return documents


def token_kubeconfig(admin_kubeconfig: str, token: str, path: Path) -> str:
    """A kubeconfig for the same cluster that authenticates with ``token`` (a ServiceAccount's)."""
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    cluster = admin["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [{"name": "operator", "context": {"cluster": cluster["name"], "user": "operator"}}],
                "current-context": "operator",
            }
        )
    )
    return str(path)


def json_of(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)
