"""Start the VAP services on this machine as real processes: API, outbox relay, inbox and the
operator (orchestrator + local runtime). Used by the demo (dev/demo.py) and the end-to-end tests.

Servers (PostgreSQL, Kafka) come from ./dev/infra; this only runs the platform's own processes,
each with its log file, and can kill (any signal) and restart any of them. ``PlatformStack`` runs them
as its own child processes (a killed one stays down until started again); ``SupervisedPlatform`` runs
them under supervisord through ./dev/services (a killed one is restarted by supervisord).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from supervisor.xmlrpc import Faults, SupervisorTransport

# Module run by each service (`python -m <module>`).
SERVICES = {
    "api": "vap_api",
    "relay": "vap_api.outbox",
    "inbox": "vap_api.inbox",
    "operator": "vap_operator",
}


_HANDED_OUT: set[int] = set()
# Processes that pick ports side by side (the test suite's workers) each take ports from their own
# blocks, so that two of them are never handed the same port: (this process's share, shares).
_PORT_BLOCK = 64
_port_share = (0, 1)


def share_ports(index: int, count: int) -> None:
    """From now on hand out only ports of share ``index`` of ``count`` (blocks of 64 ports each)."""
    global _port_share
    if not 0 <= index < count:
        raise ValueError(f"port share {index} of {count}")
    _port_share = (index, count)


def free_port() -> int:
    """A loopback port free now, and never one this process was given before: the kernel may hand a
    just-closed port out again at once, and a server given one port for two listeners fails to start."""
    index, count = _port_share
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT and (port // _PORT_BLOCK) % count == index:
            _HANDED_OUT.add(port)
            return port


def create_api_key(environment: dict[str, str], *, tenant: str, scopes: tuple[str, ...] = ()) -> str:
    """A new API key from ``vap-admin keys create`` (default scopes unless ``scopes``), on the database
    that ``environment``'s VAP_DATABASE__* settings (over this process's) name."""
    command = [sys.executable, "-m", "vap_api.auth.admin", "keys", "create", "--tenant", tenant]
    command += [f"--scope={scope}" for scope in scopes]
    result = subprocess.run(command, env={**os.environ, **environment}, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"vap-admin keys create failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout.strip()


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
        process = subprocess.Popen(
            [sys.executable, "-m", SERVICES[name]], env=self._env(name), stdout=log_file, stderr=subprocess.STDOUT
        )
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


@dataclass
class SupervisedPlatform:
    """The four services of one isolated deployment under supervisord, started by ./dev/services.

    Everything of it lives in ``state_dir`` (generated config, control socket, logs), so several can
    run at once, each with its own VAP_* environment (the end-to-end tests: DB schema, topic prefix).
    ``camera``: also serve that video over RTSP at ``camera_url`` (the demo's camera).
    """

    state_dir: Path
    environment: dict[str, str]  # VAP_* settings shared by every service
    api_port: int = field(default_factory=free_port)
    camera: Path | None = None
    camera_port: int = 8554

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def camera_url(self) -> str:
        return f"rtsp://127.0.0.1:{self.camera_port}/cam"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs" / "services"

    @property
    def socket_path(self) -> Path:
        """supervisord's control socket (SV_SOCK of dev/lib/services.sh), in the state dir; in /tmp, named by
        the state dir, when that is too deep (a test's tmp dir): a Unix socket's path holds 107 bytes."""
        path = self.state_dir / "supervisor" / "supervisor.sock"
        if len(str(path)) < 100:
            return path
        return Path("/tmp") / f"vap-supervisor-{hashlib.sha1(str(self.state_dir).encode()).hexdigest()[:16]}.sock"

    def services(self, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``./dev/services ARGS`` on this platform's state dir (its progress lines go to stdout
        unless captured)."""
        env = {**os.environ, "VAP_STATE_DIR": str(self.state_dir), "VAP_SUPERVISOR_SOCKET": str(self.socket_path)}
        return subprocess.run(
            [str(ROOT / "dev" / "services"), *args], env=env, text=True, capture_output=capture, check=False
        )

    def start_all(self) -> None:
        """``./dev/services up``: returns once the API is ready and every service RUNNING."""
        env_file = self.state_dir / "supervisor" / "platform.env"
        env_file.parent.mkdir(parents=True, exist_ok=True)
        settings = {**self.environment, "VAP_PORT": str(self.api_port), "VAP_METRICS_PORT": "0"}
        env_file.write_text("".join(f"{name}={shlex.quote(value)}\n" for name, value in settings.items()))
        camera = ["--camera", str(self.camera), "--camera-port", str(self.camera_port)] if self.camera else []
        if self.services("up", "--env-file", str(env_file), *camera).returncode != 0:
            raise RuntimeError(f"./dev/services up failed; logs in {self.log_dir}")

    def stop_all(self) -> None:
        """``./dev/services down``: every service stopped (SIGTERM, the operator first), then supervisord."""
        if self.services("down").returncode != 0:
            raise RuntimeError(f"./dev/services down failed; see {self.log_dir / 'supervisord.log'}")

    def _supervisor(self) -> Any:
        transport = SupervisorTransport(serverurl=f"unix://{self.socket_path}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def status(self) -> dict[str, dict[str, Any]]:
        """supervisord's view of each program: ``statename`` (RUNNING, BACKOFF, ...), ``pid``, ..."""
        return {info["name"]: info for info in self._supervisor().getAllProcessInfo()}

    def supervisord_pid(self) -> int:
        return int(self._supervisor().getPID())

    @property
    def processes(self) -> dict[str, int]:
        """The pid of each RUNNING service."""
        return {name: info["pid"] for name, info in self.status().items() if info["statename"] == "RUNNING"}

    def check_alive(self) -> None:
        """Raise if supervisord is gone or has given up on a service (FATAL), with the tail of its log."""
        try:
            status = self.status()
        except OSError as error:
            raise RuntimeError(f"supervisord of {self.state_dir} does not answer: {error}") from error
        for name, info in status.items():
            if info["statename"] == "FATAL":
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"supervisord gave up on {name}:\n{tail}")

    def wait_running(self, name: str, *, other_than: int = 0, timeout_seconds: float = 60.0) -> int:
        """Wait until ``name`` is RUNNING (past startsecs) with a pid other than ``other_than``; returns the pid."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            self.check_alive()
            info = self.status()[name]
            if info["statename"] == "RUNNING" and info["pid"] != other_than:
                return int(info["pid"])
            time.sleep(0.2)
        raise TimeoutError(
            f"{name} not RUNNING after {timeout_seconds}s: {self.status()[name]}; see {self.log_dir / f'{name}.log'}"
        )

    def start(self, name: str) -> int:
        """Make sure ``name`` runs (it may already have been restarted by supervisord); returns its pid."""
        try:
            self._supervisor().startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != Faults.ALREADY_STARTED:
                raise
        return self.wait_running(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to service ``name`` and wait until that process is gone; returns its pid.

        supervisord restarts it (autorestart): ``wait_running(name, other_than=pid)`` waits for that.
        """
        pid = int(self.status()[name]["pid"])
        os.kill(pid, sig)
        deadline = time.monotonic() + 60
        while self.status()[name]["pid"] == pid:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} (pid {pid}) still running 60 s after signal {sig}")
            time.sleep(0.1)
        return pid

    def restart(self, name: str) -> int:
        """``supervisorctl restart``: SIGTERM, wait until stopped, start; returns the new pid."""
        self._supervisor().stopProcess(name, True)
        return self.start(name)


DEBIAN_PYTHON = "/usr/bin/python3"  # GStreamer's GObject bindings belong to Debian's interpreter
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RtspCamera:
    """dev/rtsp_camera.py as a real process serving ``media`` at rtsp://127.0.0.1:<port>/cam.

    stop() then start() again is a real camera outage.
    """

    media: Path
    port: int = field(default_factory=free_port)
    # (user, password): the camera asks for RTSP basic authentication, and url carries them.
    credentials: tuple[str, str] | None = None
    process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        login = f"{self.credentials[0]}:{self.credentials[1]}@" if self.credentials else ""
        return f"rtsp://{login}127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        login = ["--user", self.credentials[0]] if self.credentials else []
        self.process = subprocess.Popen(
            [
                DEBIAN_PYTHON,
                str(ROOT / "dev" / "rtsp_camera.py"),
                "--media",
                str(self.media),
                "--port",
                str(self.port),
                *login,
            ],
            env={**os.environ, "VAP_CAMERA_PASSWORD": self.credentials[1]} if self.credentials else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        first_line = self.process.stdout.readline()
        if "serving" not in first_line:
            self.stop()
            raise RuntimeError(
                f"RTSP camera did not start: {first_line.strip()} (./dev/infra up installs its Debian packages)"
            )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
