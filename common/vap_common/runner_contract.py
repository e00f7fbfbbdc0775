"""How a runtime starts a runner: its environment variables and what its exit code means.

The orchestrator's runtimes (a Pod in Kubernetes, a child process locally) describe what a runner
runs as a :class:`RunnerSpec` and turn it into the environment with :func:`runner_environment`;
the runner reads the same names through its settings class (``VAP_`` prefix, ``__`` for nested
groups). One definition, so the two sides cannot drift.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from uuid import UUID

from vap_common.address_policy import AddressPolicy
from vap_common.contracts import DetectorSpec
from vap_common.settings import KafkaSettings

# Port of the runner's HTTP endpoint: /metrics (Prometheus), /healthz (liveness), /readyz (readiness).
RUNNER_HTTP_PORT = 9100


class RunnerExit(IntEnum):
    """Runner exit codes. Anything else is a crash, which the runtime restarts with backoff."""

    DONE = 0  # end of a file, or drained after SIGTERM/SIGINT
    FAILED = 3  # gave up (e.g. SourceUnreachable after N connects); `failed` already published; do not restart


@dataclass(frozen=True)
class RunnerSpec:
    """What one runner runs, as both runtimes give it to the runner."""

    scenario_uuid: UUID
    worker_id: str
    camera_url: str | None  # None: the runtime sets VAP_CAMERA_URL itself, from a Secret
    detector: DetectorSpec
    max_workers: int
    # The runtime's time between SIGTERM and SIGKILL: the runner plans its drain within it (one value,
    # so the two cannot drift apart).
    grace_seconds: float
    target_fps: float | None = None


def runner_environment(
    spec: RunnerSpec,
    *,
    kafka: KafkaSettings,
    camera_policy: AddressPolicy,
    http_port: int = RUNNER_HTTP_PORT,
    exit_code_file: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment variables for the runner of ``spec``.

    ``camera_policy``: the runtime's own, which the runner checks again just before each connect (its
    allow and deny lists, and every platform server the runtime knows, which the runner may not);
    ``exit_code_file`` asks the runner to write its exit code there (see :func:`write_exit_code`);
    ``extra``: more runner settings (the operator's VAP_RUNNER__ENVIRONMENT); the ones set here win.
    """
    env = {
        **(extra or {}),
        "VAP_SCENARIO_UUID": str(spec.scenario_uuid),
        "VAP_WORKER_ID": spec.worker_id,
        "VAP_DETECTOR__NAME": spec.detector.name,
        "VAP_DETECTOR__SETTINGS": json.dumps(spec.detector.settings),
        "VAP_MAX_WORKERS": str(spec.max_workers),
        "VAP_GRACE_PERIOD_SECONDS": str(spec.grace_seconds),
        "VAP_HTTP_PORT": str(http_port),
        "VAP_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VAP_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "VAP_CAMERA_POLICY__ALLOW": ",".join(camera_policy.allow),
        "VAP_CAMERA_POLICY__DENY": ",".join(camera_policy.deny),
        "VAP_CAMERA_POLICY__PLATFORM": ",".join(
            f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in camera_policy.platform
        ),
    }
    if spec.target_fps is not None:
        env["VAP_TARGET_FPS"] = str(spec.target_fps)
    if spec.camera_url is not None:
        env["VAP_CAMERA_URL"] = spec.camera_url
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
