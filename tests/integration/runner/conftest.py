"""Real processes for the runner's integration tests: the RTSP test camera, the runner itself, and a
reader of its Kafka topics."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.conftest import MEDIA, ROOT
from tests.helpers import wait_until
from vap_common.contracts import FrameResult, StatusEvent, decode
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, topic_name

class _CameraHandler(SimpleHTTPRequestHandler):
    """``/mjpeg``: an endless MJPEG camera (the person video as JPEG parts at 10 fps, looping); any
    other path: a file of the media folder (a video file over HTTP)."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path != "/mjpeg":
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        capture = cv2.VideoCapture(str(MEDIA / "one-by-one-person-detection.mp4"))
        try:
            while True:
                ok, image = capture.read()
                if not ok:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                jpeg = cv2.imencode(".jpg", image)[1].tobytes()
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg))
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the runner hung up
        finally:
            capture.release()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def http_camera() -> Iterator[str]:
    """Base URL of a local HTTP camera server (see _CameraHandler)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_CameraHandler, directory=str(MEDIA)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class RunnerProcess:
    """``python -m vap_runner`` with a test's settings; its JSON log lines are collected as they come."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[dict[str, Any]] = []
        self.raw = ""
        self._process = subprocess.Popen([sys.executable, "-m", "vap_runner"], env={**os.environ, **env}, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        self._collector = threading.Thread(target=self._collect, daemon=True)
        self._collector.start()

    def _collect(self) -> None:
        assert self._process.stderr is not None
        for raw in self._process.stderr:
            self.raw += raw
            try:
                self.lines.append(json.loads(raw))
            except json.JSONDecodeError:
                self.lines.append({"message": f"NOT JSON: {raw.rstrip()}"})  # shows in messages() on failure

    def messages(self) -> list[str]:
        return [line["message"] for line in self.lines]

    def wait_for_log(self, message: str, *, timeout_seconds: float) -> dict[str, Any]:
        wait_until(lambda: message in self.messages() or self._process.poll() is not None, timeout_seconds=timeout_seconds, what=f"log {message!r}")
        found = [line for line in self.lines if line["message"] == message]
        assert found, f"runner exited ({self._process.returncode}) without logging {message!r}: {self.messages()}"
        return found[-1]

    def terminate(self) -> None:
        self._process.terminate()

    def wait(self, *, timeout_seconds: float) -> int:
        try:
            code = self._process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            self._process.kill()
            raise AssertionError(f"runner still running after {timeout_seconds:g} s: {self.messages()[-5:]}") from None
        self._collector.join(5)
        return code


@pytest.fixture
def start_runner(kafka_settings: KafkaSettings) -> Iterator[Callable[..., RunnerProcess]]:
    """Start a runner for a fresh scenario on this test's Kafka topics: ``start_runner(camera_url, **settings)``."""
    started: list[RunnerProcess] = []

    def start(camera_url: str, *, scenario_uuid: uuid.UUID | None = None, **settings: object) -> RunnerProcess:
        env = {
            "VAP_SCENARIO_UUID": str(scenario_uuid or uuid.uuid4()),
            "VAP_CAMERA_URL": camera_url,
            "VAP_WORKER_ID": "test-worker",
            "VAP_HTTP_HOST": "127.0.0.1",
            "VAP_HTTP_PORT": "0",
            "VAP_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
            "VAP_KAFKA__TOPIC_PREFIX": kafka_settings.topic_prefix,
        }
        for name, value in settings.items():
            env[f"VAP_{name.upper()}"] = json.dumps(value) if isinstance(value, dict) else str(value)
        runner = RunnerProcess(env)
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner._process.kill()  # noqa: SLF001 - no-op when it already exited
        runner._process.wait()  # noqa: SLF001


class TopicReader:
    """Reads a test's topic from its beginning (assigned partitions: no consumer group to join)."""

    def __init__(self, settings: KafkaSettings, topic: Topic) -> None:
        self.name = topic_name(topic, settings.topic_prefix)
        self._consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"t-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
        partitions = self._consumer.list_topics(self.name, timeout=10).topics[self.name].partitions
        self._consumer.assign([TopicPartition(self.name, partition, OFFSET_BEGINNING) for partition in partitions])
        self.values: list[bytes] = []

    def read(self, *, until: Callable[[list[bytes]], bool] = lambda _: False, timeout_seconds: float = 10.0) -> list[bytes]:
        """Everything so far, reading until ``until(values)`` holds or nothing new came for ``timeout_seconds``."""
        deadline = time.monotonic() + timeout_seconds
        while not until(self.values) and time.monotonic() < deadline:
            for message in self._consumer.consume(num_messages=500, timeout=0.5):
                assert message.error() is None, message.error()
                self.values.append(message.value())
        return self.values

    def close(self) -> None:
        self._consumer.close()


@pytest.fixture
def results_and_statuses(kafka_settings: KafkaSettings) -> Iterator[tuple[Callable[..., list[FrameResult]], Callable[..., list[StatusEvent]]]]:
    """``results(until=..., timeout_seconds=...)`` and ``statuses(...)``: decoded messages of this test's topics."""
    results_reader, status_reader = TopicReader(kafka_settings, Topic.RESULTS), TopicReader(kafka_settings, Topic.SCENARIO_STATUS)

    def results(*, until: Callable[[list[FrameResult]], bool] = lambda _: False, timeout_seconds: float = 5.0) -> list[FrameResult]:
        values = results_reader.read(until=lambda raw: until([decode(FrameResult, value) for value in raw]), timeout_seconds=timeout_seconds)
        return [decode(FrameResult, value) for value in values]

    def statuses(*, until: Callable[[list[StatusEvent]], bool] = lambda _: False, timeout_seconds: float = 5.0) -> list[StatusEvent]:
        values = status_reader.read(until=lambda raw: until([decode(StatusEvent, value) for value in raw]), timeout_seconds=timeout_seconds)
        return [decode(StatusEvent, value) for value in values]

    yield results, statuses
    results_reader.close()
    status_reader.close()
