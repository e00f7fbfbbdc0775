"""How a runtime starts a runner: its environment variables and what its exit code means.

The orchestrator's runtimes (a Pod in Kubernetes, a child process locally) build the environment
with :func:`runner_environment`; the runner reads the same names through its settings class
(``VAP_`` prefix, ``__`` for nested groups). One definition, so the two sides cannot drift.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from enum import IntEnum
from pathlib import Path

from vap_common.contracts import DeployCommand
from vap_common.settings import KafkaSettings

# Port of the runner's HTTP endpoint: /metrics (Prometheus), /healthz (liveness), /readyz (readiness).
RUNNER_HTTP_PORT = 9100


class RunnerExit(IntEnum):
    """Runner exit codes. Anything else is a crash, which the runtime restarts with backoff."""

    DONE = 0  # end of a file, or drained after SIGTERM/SIGINT
    FAILED = 3  # gave up (e.g. SourceUnreachable after N connects); `failed` already published; do not restart


def runner_environment(
    command: DeployCommand,
    *,
    kafka: KafkaSettings,
    max_workers: int,
    grace_seconds: float,
    target_fps: float | None = None,
    http_port: int = RUNNER_HTTP_PORT,
    include_camera_url: bool = True,
    exit_code_file: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment variables for the runner of ``command``.

    ``include_camera_url=False`` leaves VAP_CAMERA_URL out, for runtimes that inject it from a Secret;
    ``exit_code_file`` asks the runner to write its exit code there (see :func:`write_exit_code`);
    ``extra``: more runner settings (the operator's VAP_RUNNER__ENVIRONMENT); the ones set here win.
    ``grace_seconds`` is the runtime's time between SIGTERM and SIGKILL: the runner plans its drain
    within it (one value, so the two cannot drift apart).
    """
    env = {
        **(extra or {}),
        "VAP_SCENARIO_UUID": str(command.scenario_uuid),
        "VAP_WORKER_ID": command.worker_id,
        "VAP_DETECTOR__NAME": command.detector.name,
        "VAP_DETECTOR__SETTINGS": json.dumps(command.detector.settings),
        "VAP_MAX_WORKERS": str(max_workers),
        "VAP_GRACE_PERIOD_SECONDS": str(grace_seconds),
        "VAP_HTTP_PORT": str(http_port),
        "VAP_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VAP_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
    }
    if target_fps is not None:
        env["VAP_TARGET_FPS"] = str(target_fps)
    if include_camera_url:
        env["VAP_CAMERA_URL"] = command.camera_url
    if exit_code_file is not None:
        env["VAP_EXIT_CODE_FILE"] = str(exit_code_file)
    return env


def write_exit_code(path: Path, code: int) -> None:
    """Record a runner's exit code atomically (a runtime that did not start the process reads it)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(f"{int(code)}\n")
    temporary.replace(path)


def read_exit_code(path: Path) -> int | None:
    """The exit code a runner wrote to ``path``; None when it wrote none (it was killed, or runs)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
