"""API throughput (issue 3): requests/s and latency of POST /scenario/init and GET /prediction (100 results).

A real API process (`python -m vap_api`, one uvicorn worker, access log off) on loopback, on its own
schema; the load generator is `wrk` (C, 2 threads, 32 keep-alive connections, 10 s per endpoint,
after a 2 s warm-up), so the generator takes little of the CPU the API needs. The GET reads one
scenario with 2,000 stored frames (3 detections each) and returns the default page of 100.
Prints the figures and writes bench/results/api.json (section "http").
Run: bench/run api_http (installs `wrk` from Debian if missing)
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx2
from sqlalchemy import insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _api_common import Child, isolated_stack, record, wait_for  # noqa: E402

from vap_common.db import make_engine  # noqa: E402
from vap_common.schema import Scenario  # noqa: E402

CONNECTIONS = 32
THREADS = 2
SECONDS = 10
FRAMES = 2000

# wrk prints this JSON line when done (latencies in microseconds).
_REPORT = """
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "duration_us": %d, "errors": %d, "non_2xx": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""
_POST = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"camera_url": "rtsp://user:secret@cam.example:554/stream", "detector": {"name": "mock"}}'
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wrk(url: str, script: str, seconds: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script + _REPORT)
    result = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "-s", file.name, url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )
    Path(file.name).unlink()
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "requests_per_s": round(report["requests"] / (report["duration_us"] / 1e6), 1),
        "p50_ms": round(report["p50_us"] / 1000, 2),
        "p99_ms": round(report["p99_us"] / 1000, 2),
        "max_ms": round(report["max_us"] / 1000, 2),
        "requests": report["requests"],
        "errors": report["errors"] + report["non_2xx"],
    }


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: run this benchmark through bench/run, which installs it")
    with isolated_stack("http") as stack, tempfile.TemporaryDirectory() as logs:
        engine = make_engine(stack.database, pool_size=2)
        scenario_uuid = uuid.uuid4()
        with engine.begin() as connection:
            connection.execute(insert(Scenario).values(scenario_uuid=scenario_uuid, camera_url="rtsp://cam.example/s", status="active"))
            detections = json.dumps([{"class": "person", "confidence": 0.9, "bbox": [10.5, 20.0, 110.0, 220.25]}] * 3)
            connection.execute(
                text(
                    "INSERT INTO scenario_results (scenario_uuid, run_id, frame_number, detections, timestamp) "
                    "SELECT :u, 'run-1', n, CAST(:d AS jsonb), now() + n * interval '40 milliseconds' FROM generate_series(0, :last) AS n"
                ),
                {"u": scenario_uuid, "d": detections, "last": FRAMES - 1},
            )
        port = _free_port()
        api = Child("vap_api", stack.env(VAP_PORT=str(port), VAP_ACCESS_LOG="false", VAP_DATABASE__POOL_SIZE="10"), Path(logs) / "api.log")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _ready(base), timeout_seconds=60, what="the API")
            body = httpx2.get(f"{base}/api/v1/prediction/{scenario_uuid}", timeout=10).json()
            assert len(body["results"]) == 100, "the GET must return 100 results"
            prediction_url = f"{base}/api/v1/prediction/{scenario_uuid}"
            init_url = f"{base}/api/v1/scenario/init"
            _wrk(prediction_url, "", 2)
            _wrk(init_url, _POST, 2)
            figures = {"get_prediction_100": _wrk(prediction_url, "", SECONDS), "post_init": _wrk(init_url, _POST, SECONDS)}
            figures["response_bytes_get_prediction_100"] = len(httpx2.get(prediction_url, timeout=10).content)
        finally:
            api.stop()
            engine.dispose()
    record("http", {**figures, "load": f"wrk -t{THREADS} -c{CONNECTIONS} -d{SECONDS}s, one uvicorn worker"})


def _ready(base: str) -> bool:
    try:
        return httpx2.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx2.TransportError:
        return False


if __name__ == "__main__":
    main()
