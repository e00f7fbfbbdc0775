"""Real processes for the runner's integration tests: the RTSP test camera, the runner itself, and a
reader of its Kafka topics."""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import cv2
import pytest

from tests.conftest import MEDIA
from tests.helpers import TopicReader
from tests.integration.runner.runner_test_support import RunnerProcess
from vap_common.contracts import ContractT, FrameResult, StatusEvent, decode
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic


class _CameraHandler(SimpleHTTPRequestHandler):
    """``/mjpeg``: an endless MJPEG camera (the person video as JPEG parts at 10 fps, looping);
    ``/redirect?<url>``: a 302 to ``url``; any other path: a file of the media folder (a video file
    over HTTP)."""

    def do_GET(self) -> None:
        if self.path.startswith("/redirect?"):
            self.send_response(302)
            self.send_header("Location", self.path.partition("?")[2])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
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
                self.wfile.write(
                    b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg)
                )
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the runner hung up
        finally:
            capture.release()

    def log_message(self, format: str, *args: object) -> None:
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
            # The test cameras are on this machine's loopback (the runner's Kafka there stays refused).
            "VAP_CAMERA_POLICY__ALLOW": "127.0.0.0/8",
        }
        for name, value in settings.items():
            env[f"VAP_{name.upper()}"] = json.dumps(value) if isinstance(value, dict) else str(value)
        runner = RunnerProcess(env)
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner._process.kill()
        runner._process.wait()


@pytest.fixture
def results_and_statuses(
    kafka_settings: KafkaSettings,
) -> Iterator[tuple[Callable[..., list[FrameResult]], Callable[..., list[StatusEvent]]]]:
    """``results(until=..., timeout_seconds=...)`` and ``statuses(...)``: decoded messages of this test's topics."""
    results_reader, status_reader = (
        TopicReader(kafka_settings, Topic.RESULTS),
        TopicReader(kafka_settings, Topic.SCENARIO_STATUS),
    )

    def read(
        reader: TopicReader,
        contract: type[ContractT],
        until: Callable[[list[ContractT]], bool] | None,
        timeout_seconds: float,
    ) -> list[ContractT]:
        condition = None if until is None else lambda raw: until([decode(contract, value) for value in raw])
        return [decode(contract, value) for value in reader.read(until=condition, timeout_seconds=timeout_seconds)]

    def results(
        *, until: Callable[[list[FrameResult]], bool] | None = None, timeout_seconds: float = 5.0
    ) -> list[FrameResult]:
        return read(results_reader, FrameResult, until, timeout_seconds)

    def statuses(
        *, until: Callable[[list[StatusEvent]], bool] | None = None, timeout_seconds: float = 5.0
    ) -> list[StatusEvent]:
        return read(status_reader, StatusEvent, until, timeout_seconds)

    yield results, statuses
    results_reader.close()
    status_reader.close()
