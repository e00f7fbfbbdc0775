"""Start the VAP services on this machine as real processes: API, outbox relay, inbox and the
operator (orchestrator + local runtime). Used by the demo (dev/demo.py) and the end-to-end tests.

Servers (PostgreSQL, Kafka) come from ./dev/infra; this only runs the platform's own processes,
each with its log file, and can kill (any signal) and restart any of them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

# Module run by each service (`python -m <module>`).
SERVICES = {
    "api": "vap_api",
    "relay": "vap_api.outbox",
    "inbox": "vap_api.inbox",
    "operator": "vap_operator",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PlatformStack:
    """The four service processes of one isolated deployment (its own DB schema and topic prefix)."""

    log_dir: Path
    environment: dict[str, str]  # VAP_* settings shared by every service
    api_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _env(self, name: str) -> dict[str, str]:
        env = {**os.environ, **self.environment, "VAP_PORT": str(self.api_port), "VAP_METRICS_PORT": "0"}
        if name == "operator":
            env.setdefault("VAP_RUNTIME", "local")
        return env

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start service ``name`` (a key of SERVICES); its output is appended to <log_dir>/<name>.log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen([sys.executable, "-m", SERVICES[name]], env=self._env(name), stdout=log_file, stderr=subprocess.STDOUT)
        log_file.close()
        self.processes[name] = process
        return process

    def start_all(self, *, ready_timeout_seconds: float = 60.0) -> None:
        for name in SERVICES:
            self.start(name)
        self.wait_api_ready(ready_timeout_seconds)

    def wait_api_ready(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx2.get(f"{self.api_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"API not ready after {timeout_seconds}s; see {self.log_dir / 'api.log'}")

    def check_alive(self) -> None:
        """Raise if a started service has exited (with the tail of its log)."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"service {name} exited with {process.returncode}:\n{tail}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to service ``name`` and wait until it is gone."""
        process = self.processes.pop(name)
        process.send_signal(sig)
        process.wait(timeout=60)

    def restart(self, name: str) -> None:
        self.kill(name)
        self.start(name)

    def stop_all(self, *, timeout_seconds: float = 30.0) -> dict[str, int]:
        """SIGTERM every service (the operator first: it stops its runners), then SIGKILL stragglers."""
        codes: dict[str, int] = {}
        for name in sorted(self.processes, key=lambda item: item != "operator"):
            process = self.processes[name]
            process.send_signal(signal.SIGTERM)
            try:
                codes[name] = process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        self.processes.clear()
        return codes


DEBIAN_PYTHON = "/usr/bin/python3"  # GStreamer's GObject bindings belong to Debian's interpreter
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RtspCamera:
    """dev/rtsp_camera.py as a real process serving ``media`` at rtsp://127.0.0.1:<port>/cam.

    stop() then start() again is a real camera outage.
    """

    media: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [DEBIAN_PYTHON, str(ROOT / "dev" / "rtsp_camera.py"), "--media", str(self.media), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        first_line = self.process.stdout.readline()
        if "serving" not in first_line:
            self.stop()
            raise RuntimeError(f"RTSP camera did not start: {first_line.strip()} (./dev/infra up installs its Debian packages)")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
