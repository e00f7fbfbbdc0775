"""API throughput (issue 3): requests/s and latency of POST /scenario/init and GET /prediction (100 results).

A real API process (`python -m vap_api`, one uvicorn worker, access log off) on loopback, on its own
schema; the load generator is `wrk` (C, 2 threads, 32 keep-alive connections, 10 s per endpoint,
after a 2 s warm-up), so the generator takes little of the CPU the API needs. Each GET returns the
default page of 100 results (3 detections each):
  get_prediction_100             the first page of a live scenario with 2,000 stored frames;
  get_prediction_100_cursor      the same scenario from the `next_cursor` after its first 1,000;
  get_prediction_100_file_rerun  a file scenario whose runner restarted: run 1 stored frames 0-999,
                                 run 2 then 0-1,999; the page from the cursor after run 1 skips run
                                 2's 1,000 re-analysed frames (one index probe each) before it
                                 serves 1,000-1,099: the worst page of the file rule.
Authentication (issue 16), side by side in the same run:
  auth_us_cached / auth_us_lookup  one key check in-process (median of 2,000): remembered, and looked
                                   up in PostgreSQL (VAP_AUTH__KEY_CACHE_SECONDS=0);
  get_prediction_100_without_auth  the first GET again on a second API process whose credential check
                                   is taken out (bench/_api_without_auth.py), to compare with
                                   get_prediction_100 (every figure above sends its API key).
Camera credentials (issue 16): post_init registers a camera URL with a password, which the API seals
(AES-SIV) before it stores it; seal_us / open_us: sealing it and opening it again in-process (median
of 2,000).
Prints the figures and writes bench/results/api.json (section "http").
Run: bench/run api_http (installs `wrk` from Debian if missing)
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import insert, text

from bench._api_common import Child, Stack, api_ready, isolated_stack, record, wait_for
from dev.platform_stack import create_api_key, free_port
from vap_api.auth.authenticator import Authenticator
from vap_common.camera_secrets import CameraKeyring, generate_key
from vap_common.db import make_engine, make_session_factory
from vap_common.schema import Scenario
from vap_common.tenants import DEFAULT_TENANT

CAMERA_KEYS = generate_key("bench")
CONNECTIONS = 32
THREADS = 2
SECONDS = 10
FRAMES = 2000
_RESULTS = (
    "INSERT INTO scenario_results (scenario_uuid, run_id, frame_number, detections, timestamp) "
    "SELECT :u, :run, n, CAST(:d AS jsonb), now() + n * interval '40 milliseconds' FROM generate_series(0, :last) AS n"
)

# wrk prints this JSON line when done (latencies in microseconds).
_REPORT = """
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "duration_us": %d, "errors": %d, "non_2xx": %d, \
"p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
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


def _wrk(url: str, script: str, seconds: int, *, key: str | None) -> dict[str, float]:
    authorization = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(authorization + script + _REPORT)
    result = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "-s", file.name, url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
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
        scenario_uuid, file_uuid = uuid.uuid4(), uuid.uuid4()
        detections = json.dumps([{"class": "person", "confidence": 0.9, "bbox": [10.5, 20.0, 110.0, 220.25]}] * 3)
        with engine.begin() as connection:
            connection.execute(
                insert(Scenario).values(scenario_uuid=scenario_uuid, camera_url="rtsp://cam.example/s", status="active")
            )
            connection.execute(
                insert(Scenario).values(scenario_uuid=file_uuid, camera_url="file:///media/video.mp4", status="active")
            )
            connection.execute(
                text(_RESULTS), {"u": scenario_uuid, "run": "run-1", "d": detections, "last": FRAMES - 1}
            )
            connection.execute(
                text(_RESULTS), {"u": file_uuid, "run": "run-1", "d": detections, "last": FRAMES // 2 - 1}
            )
        with engine.begin() as connection:  # the rerun, stored after run 1
            connection.execute(text(_RESULTS), {"u": file_uuid, "run": "run-2", "d": detections, "last": FRAMES - 1})
        with engine.begin() as connection:  # planner statistics now, not whenever autovacuum gets to it during the run
            connection.execute(text("ANALYZE scenario_results"))
        key = create_api_key(stack.env(), tenant=DEFAULT_TENANT)
        headers = {"Authorization": f"Bearer {key}"}
        port, open_port = free_port(), free_port()
        # POST /scenario/init measures the insert path: no admission limit may answer 429 instead.
        unlimited = {
            "VAP_MAX_STARTING_SCENARIOS": "1000000000",
            "VAP_QUOTAS__DEFAULT__MAX_SCENARIOS": "1000000000",
            "VAP_WRITES_PER_MINUTE_PER_KEY": "0",
        }
        api_env = stack.env(
            VAP_ACCESS_LOG="false", VAP_DATABASE__POOL_SIZE="10", VAP_CAMERA_KEYS=CAMERA_KEYS, **unlimited
        )
        api = Child("vap_api", {**api_env, "VAP_PORT": str(port)}, Path(logs) / "api.log")
        open_api = Child("bench._api_without_auth", {**api_env, "VAP_PORT": str(open_port)}, Path(logs) / "open.log")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: api_ready(base), timeout_seconds=60, what="the API")
            wait_for(lambda: api_ready(f"http://127.0.0.1:{open_port}"), timeout_seconds=60, what="the open API")
            prediction_url = f"{base}/api/v1/prediction/{scenario_uuid}"
            # Served once no older transaction of the cluster runs: usually at once.
            wait_for(
                lambda: len(httpx2.get(prediction_url, headers=headers, timeout=10).json()["results"]) == 100,
                timeout_seconds=30,
                what="100 results served",
            )
            cursor_url = f"{prediction_url}?cursor={_cursor_after(prediction_url, FRAMES // 2, headers)}"
            file_url = f"{base}/api/v1/prediction/{file_uuid}"
            file_cursor_url = f"{file_url}?cursor={_cursor_after(file_url, FRAMES // 2, headers)}"
            file_page = httpx2.get(file_cursor_url, headers=headers, timeout=10).json()["results"]
            expected = [("run-2", number) for number in range(FRAMES // 2, FRAMES // 2 + 100)]
            assert [(r["run_id"], r["frame_number"]) for r in file_page] == expected, "each frame of a file once"
            init_url = f"{base}/api/v1/scenario/init"
            gets = {
                "get_prediction_100": prediction_url,
                "get_prediction_100_cursor": cursor_url,
                "get_prediction_100_file_rerun": file_cursor_url,
            }
            open_url = prediction_url.replace(f":{port}/", f":{open_port}/")
            for url in gets.values():
                _wrk(url, "", 2, key=key)
            _wrk(open_url, "", 2, key=None)
            _wrk(init_url, _POST, 2, key=key)
            figures: dict[str, Any] = {name: _wrk(url, "", SECONDS, key=key) for name, url in gets.items()}
            figures["get_prediction_100_without_auth"] = _wrk(open_url, "", SECONDS, key=None)
            figures["auth_throughput_ratio"] = round(
                figures["get_prediction_100"]["requests_per_s"]
                / figures["get_prediction_100_without_auth"]["requests_per_s"],
                3,
            )
            figures["post_init"] = _wrk(init_url, _POST, SECONDS, key=key)
            figures["response_bytes_get_prediction_100"] = len(
                httpx2.get(prediction_url, headers=headers, timeout=10).content
            )
            figures.update(_auth_cost(stack, key))
            figures.update(_sealing_cost())
        finally:
            api.stop()
            open_api.stop()
            engine.dispose()
    record("http", {**figures, "load": f"wrk -t{THREADS} -c{CONNECTIONS} -d{SECONDS}s, one uvicorn worker"})


def _auth_cost(stack: Stack, key: str, calls: int = 2000) -> dict[str, float]:
    """Microseconds per key check in this process (median of ``calls``): remembered, and looked up."""
    engine = make_engine(stack.database, pool_size=1)
    sessions = make_session_factory(engine)
    figures: dict[str, float] = {}
    try:
        for name, cache_seconds in (("auth_us_cached", 3600.0), ("auth_us_lookup", 0.0)):
            authenticator = Authenticator(sessions, cache_seconds=cache_seconds)
            authenticator.principal(key)  # warm: the pool's connection, the statement cache
            took = []
            for _ in range(calls):
                started = time.perf_counter()
                authenticator.principal(key)
                took.append(time.perf_counter() - started)
            figures[name] = round(statistics.median(took) * 1e6, 1)
    finally:
        engine.dispose()
    return figures


def _sealing_cost(calls: int = 2000) -> dict[str, float]:
    """Microseconds to seal the POST's camera URL and to open it again (median of ``calls``)."""
    keyring = CameraKeyring.parse([CAMERA_KEYS])
    url = "rtsp://user:secret@cam.example:554/stream"
    sealed = keyring.seal(url)
    figures = {}
    for name, step, argument in (("seal_us", keyring.seal, url), ("open_us", keyring.open, sealed)):
        took = []
        for _ in range(calls):
            started = time.perf_counter()
            step(argument)
            took.append(time.perf_counter() - started)
        figures[name] = round(statistics.median(took) * 1e6, 1)
    return figures


def _cursor_after(url: str, count: int, headers: dict[str, str]) -> str:
    """The next_cursor after the first ``count`` results served at ``url``."""
    body = httpx2.get(url, params={"limit": count}, headers=headers, timeout=10).json()
    assert len(body["results"]) == count, f"{len(body['results'])} results served, not {count}"
    return str(body["next_cursor"])


if __name__ == "__main__":
    main()
