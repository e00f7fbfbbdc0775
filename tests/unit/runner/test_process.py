"""The runner as a real process: SIGTERM drain and the HTTP probes (no Kafka needed: it is unreachable)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.conftest import MEDIA, ROOT
from vap_runner.metrics import RunnerMetrics
from vap_runner.probes import Health, serve


def process_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in {"Z", "X"}
    except FileNotFoundError:
        return False


def test_sigterm_finishes_frames_in_flight_and_exits_0_without_orphans() -> None:
    env = {
        **os.environ,
        "VAP_SCENARIO_UUID": str(uuid.uuid4()),
        "VAP_CAMERA_URL": str(MEDIA / "one-by-one-person-detection.mp4"),
        "VAP_DETECTOR__NAME": "mock",
        "VAP_DETECTOR__SETTINGS": json.dumps({"delay_ms": 300}),  # the file would take minutes
        "VAP_MAX_WORKERS": "2",
        "VAP_HTTP_HOST": "127.0.0.1",
        "VAP_HTTP_PORT": "0",
        "VAP_GRACE_PERIOD_SECONDS": "4",
        "VAP_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",  # nobody listens: the flush gives up within the grace period
    }
    runner = subprocess.Popen(
        [sys.executable, "-m", "vap_runner"], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    lines: list[dict[str, object]] = []
    assert runner.stderr is not None
    for raw in runner.stderr:
        lines.append(json.loads(raw))  # every line is a JSON log record, librdkafka's included
        if lines[-1]["message"] == "source open":
            break
    else:
        raise AssertionError(f"runner ended before opening its source: {lines}")
    time.sleep(1.0)  # frames are in flight now
    signalled = time.monotonic()
    runner.send_signal(signal.SIGTERM)
    _, rest = runner.communicate(timeout=15)
    took = time.monotonic() - signalled
    lines += [json.loads(raw) for raw in rest.splitlines()]
    messages = [line["message"] for line in lines]

    assert runner.returncode == 0, messages
    assert took < 4 + 2, f"grace period is 4 s; took {took:.1f} s"
    assert "stop requested; finishing frames in flight" in messages and "stopped on request" in messages
    summary = next(line for line in lines if line["message"] == "stopped on request")
    assert 0 < int(summary["frames_analysed"]) < 1394  # type: ignore[call-overload]
    assert not any(line["message"] == "status published" for line in lines), "a stop publishes no status"
    worker_pids = next(line["pids"] for line in lines if line["message"] == "inference processes ready")
    assert worker_pids and not any(process_alive(pid) for pid in worker_pids)  # type: ignore[union-attr]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_probes_report_liveness_readiness_and_metrics() -> None:
    ready = [False]
    health = Health(liveness_timeout_seconds=0.3, is_ready=lambda: ready[0])
    metrics = RunnerMetrics()
    metrics.frames_read.inc(3)
    metrics.inference_seconds.observe(0.02)
    server = serve(host="127.0.0.1", port=0, health=health, registry=metrics.registry)
    port = server.server_address[1]
    try:
        assert _get(port, "/healthz")[0] == 200
        assert _get(port, "/readyz")[0] == 503
        ready[0] = True
        assert _get(port, "/readyz")[0] == 200
        status, body = _get(port, "/metrics")
        assert (
            status == 200
            and "vap_runner_frames_read_total 3.0" in body
            and "vap_runner_inference_seconds_bucket" in body
        )
        time.sleep(0.4)  # no beat for longer than the liveness timeout
        assert _get(port, "/healthz")[0] == 503
        health.beat()
        assert _get(port, "/healthz")[0] == 200
        assert _get(port, "/nope")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
