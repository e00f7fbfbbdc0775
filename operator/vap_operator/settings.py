"""The one settings object of the `vap-operator` / `vap-orchestrator` processes (``VAP_*`` variables).

Groups: ``VAP_ORCHESTRATOR__*``, ``VAP_RESTART__*``, ``VAP_RUNNER__*``, ``VAP_KUBERNETES__*``,
``VAP_LOCAL__*``, ``VAP_CAMERA_POLICY__*``. Each field says its unit and why it has its default.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from vap_common.settings import CameraPolicyOptions, DatabaseServiceSettings
from vap_operator.decisions import RestartPolicy

_IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class OrchestratorSettings(BaseModel):
    """The `init_scenario` consumer."""

    # Run the orchestrator inside `vap-operator` too (one process on a laptop); set false when it runs
    # as its own `vap-orchestrator` process/Deployment.
    enabled: bool = True
    # Kafka consumer group: every orchestrator replica shares it, so each scenario has one owner.
    consumer_group: str = "vap-orchestrator"
    # Seconds one poll waits for a batch; bounds the added latency of a command, cheap when idle.
    poll_timeout_seconds: float = Field(default=0.1, gt=0)


class RestartSettings(BaseModel):
    """When a crashed runner is restarted, and when it is given up on (both runtimes)."""

    # Seconds before the first restart; doubles per recent crash. 2 s rides out a broker blip.
    backoff_base_seconds: float = Field(default=2.0, gt=0)
    # Seconds: the backoff never exceeds this (kubelet's CrashLoopBackOff also caps at minutes).
    backoff_max_seconds: float = Field(default=120.0, gt=0)
    # Crashes within the window that mark the scenario `failed` (RunnerCrashLoop) instead of restarting.
    crash_loop_threshold: int = Field(default=5, ge=1, le=100)  # status.crashes holds at most 100
    # Seconds: crashes older than this are forgotten, so a runner that crashes once a day is not failed.
    crash_loop_window_seconds: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _window_covers_backoff(self) -> RestartSettings:
        if self.backoff_max_seconds > self.crash_loop_window_seconds:
            raise ValueError("restart.backoff_max_seconds must not exceed restart.crash_loop_window_seconds")
        return self

    def policy(self) -> RestartPolicy:
        return RestartPolicy(
            backoff_base_seconds=self.backoff_base_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
            crash_loop_threshold=self.crash_loop_threshold,
            crash_loop_window_seconds=self.crash_loop_window_seconds,
        )


class RunnerLaunchSettings(BaseModel):
    """What every runner gets, whichever runtime starts it."""

    # Inference processes per runner (VAP_MAX_WORKERS). The contracts carry no per-scenario value yet.
    max_workers: int = Field(default=1, ge=1, le=64)
    # Frames per second a runner analyses when its scenario asks no rate of its own (None: the runner's default).
    target_fps: float | None = Field(default=None, gt=0)
    # Seconds between SIGTERM and SIGKILL (Kubernetes: the Pod's terminationGracePeriodSeconds, rounded
    # up). The runner gets the same value (VAP_GRACE_PERIOD_SECONDS) and finishes its frames in flight and
    # flushes Kafka within it.
    stop_grace_seconds: float = Field(default=30.0, gt=0)
    # Any other runner setting, passed as it is to every runner (VAP_* names of vap_runner.settings,
    # e.g. VAP_RUNNER__ENVIRONMENT='{"VAP_DOWNSTREAM_OUTAGE_LIMIT_SECONDS": "600"}'); the fields above win.
    environment: dict[str, str] = Field(default_factory=dict)

    def target_fps_for(self, analysis_fps: float | None) -> float | None:
        """The rate a scenario's runner analyses at: the scenario's own (``analysis_fps``), else the runtime's."""
        return analysis_fps if analysis_fps is not None else self.target_fps

    @field_validator("environment")
    @classmethod
    def _runner_settings_only(cls, value: dict[str, str]) -> dict[str, str]:
        if wrong := [name for name in value if not name.startswith("VAP_")]:
            raise ValueError(f"runner.environment holds runner settings (VAP_*) only, not {wrong}")
        return value


class KubernetesSettings(BaseModel):
    """The kopf operator (VAP_RUNTIME=kubernetes)."""

    # Namespace the operator watches and creates VideoScenarios/Pods in (None: its own Pod's namespace).
    namespace: str | None = None
    runner_image: str = "vap-runner:0.1.0"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    # Runner container resources (Kubernetes quantities). One decode thread + max_workers detectors.
    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "512Mi"
    memory_limit: str = "2Gi"
    # MiB of the emptyDir mounted at /tmp (the root filesystem is read-only).
    tmp_size_mib: int = Field(default=256, ge=16)
    # MiB of the memory-backed emptyDir mounted at /dev/shm, where the runner keeps its frame slots
    # (2 * max_workers + 6 frames, e.g. 6 MiB each at 1080p). Container runtimes give only 64 MiB by
    # default; it counts against memory_limit.
    shm_size_mib: int = Field(default=512, ge=64)
    # UID/GID the runner runs as: the `vap` user of runner-image/Dockerfile.
    run_as_user: int = Field(default=10001, ge=1)
    # ServiceAccount of runner Pods (None: the namespace default); runners never call the API.
    runner_service_account: str | None = None
    # Probe timing (seconds). Startup opens the stream first, so liveness waits longer.
    liveness_initial_delay_seconds: int = 20
    readiness_period_seconds: int = 5
    liveness_period_seconds: int = 10
    liveness_failure_threshold: int = 3
    # Runner Pods that may exist at once (None: no limit). Past it, scenarios wait in
    # in_startup_processing with the reason in workers.wait_reason and the VideoScenario's conditions.
    capacity: int | None = Field(default=None, ge=1)
    # Runner Pods use the node's network (hostNetwork): for a single node without a pod network.
    host_network: bool = False
    # With host_network: the HTTP ports runner Pods take, one each (they share the node's); none free: a scenario waits.
    host_port_first: int = 28300
    host_port_last: int = 28399
    # nodeSelector of runner Pods, e.g. a GPU node pool ({}: any node).
    node_selector: dict[str, str] = Field(default_factory=dict)
    # httpGet.host of the runner probes (None: the Pod's IP); loopback on a hostNetwork node without a pod network.
    probe_host: str | None = None
    # Kafka consumer group of the to_deploy consumer (shared by replicas: VideoScenario writes are idempotent).
    consumer_group: str = "vap-runtime-kubernetes"
    poll_timeout_seconds: float = Field(default=0.1, gt=0)
    # kopf peering: only the live replica with the highest priority acts; the others stand by.
    peering_name: str = "vap-operator"
    # "mandatory": start paused until the peering object is read (never two actors at start-up);
    # "standalone": no peering (one replica only, e.g. a developer's run).
    peering_mode: Literal["mandatory", "standalone"] = "mandatory"
    # Seconds a replica's keep-alive is trusted: how long a killed leader blocks its standby.
    peering_lifetime_seconds: int = Field(default=60, ge=5)
    # Replica priority (None: random per process, so two replicas never tie and both pause).
    peering_priority: int | None = None
    # Seconds between re-checks while waiting for a Pod deletion (Pod events also wake the handler).
    wait_poll_seconds: float = Field(default=2.0, gt=0)
    # Seconds between re-reads of every runner Pod, a safety net for a lost Pod event (one GET and
    # one status PATCH per VideoScenario each time: keep it in minutes).
    resync_seconds: float = Field(default=120.0, ge=1)
    # Port of kopf's liveness endpoint (/healthz); 0 disables it.
    liveness_port: int = Field(default=8080, ge=0)

    @model_validator(mode="after")
    def _host_ports_are_a_range(self) -> KubernetesSettings:
        if not 1024 <= self.host_port_first <= self.host_port_last <= 65535:
            raise ValueError("kubernetes.host_port_first..host_port_last must be a range within 1024..65535")
        return self

    def resolved_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        if _IN_CLUSTER_NAMESPACE.exists():
            return _IN_CLUSTER_NAMESPACE.read_text().strip()
        return "default"


class LocalSettings(BaseModel):
    """The local runtime (VAP_RUNTIME=local): runners as child processes of this machine."""

    # argv of one runner; the scenario is given only through the environment (runner_environment()).
    runner_command: list[str] = Field(default_factory=lambda: [sys.executable, "-m", "vap_runner"], min_length=1)
    consumer_group: str = "vap-runtime-local"
    # Seconds one loop iteration waits for to_deploy messages; also how often exits/restarts are checked.
    tick_seconds: float = Field(default=0.1, gt=0)
    # First HTTP port (/healthz, /readyz, /metrics) handed to local runners; 0: a free port each.
    http_port_base: int = Field(default=0, ge=0)
    # Runners that may run at once (None: derived from the machine, see resolved_capacity()). Past it, scenarios
    # wait in in_startup_processing, oldest first, with the reason in workers.wait_reason.
    capacity: int | None = Field(default=None, ge=1)
    # With capacity None: runners per CPU core (a 5 fps camera with a light detector uses a fraction
    # of a core) ...
    runners_per_core: float = Field(default=5.0, gt=0)
    # ... and MiB of memory each runner may take (runner ~100 MiB + ~80 MiB per inference process),
    # of at most half the machine's memory.
    memory_per_runner_mib: int = Field(default=400, ge=50)
    # Runners started per second at most (resumed after a restart, or leaving the wait queue), so a
    # restart with hundreds of scenarios does not start them all at once.
    starts_per_second: float = Field(default=4.0, gt=0)
    # Where runner exit codes are written (one file per runner), so a restarted runtime that adopts
    # still-running runners learns how they ended. None: a folder under the system temp dir.
    state_dir: Path | None = None

    def resolved_capacity(self, *, cpu_count: int, memory_bytes: int) -> int:
        """The capacity as set, or derived from the machine's cores and memory (at least 1)."""
        if self.capacity is not None:
            return self.capacity
        by_cpu = int(cpu_count * self.runners_per_core)
        by_memory = int(memory_bytes / 2 / (self.memory_per_runner_mib * 2**20))
        return max(1, min(by_cpu, by_memory))


class OperatorSettings(DatabaseServiceSettings):
    """Settings of vap-operator (orchestrator + one runtime) and vap-orchestrator."""

    # Which runtime turns to_deploy into runners.
    runtime: Literal["kubernetes", "local"] = "local"
    # Port of this process's Prometheus /metrics; 0 disables it (tests run several processes).
    metrics_port: int = Field(default=0, ge=0)
    # Seconds before Kafka gives a dead replica's partitions to a live one (its 45 s default would
    # stall every scenario of a killed replica that long); the broker's minimum is 6 s.
    consumer_session_timeout_seconds: float = Field(default=10.0, ge=6)
    # Seconds between renewals of the runtime's lease on its running runners (workers.heartbeat_at);
    # the API shows a scenario whose lease is older than a few of these as stale.
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    # Seconds a consumer may see messages waiting on its partitions without taking any before it
    # exits for its supervisor to restart it (a wedged consumer; see vap_common.consuming).
    consumer_stall_timeout_seconds: float = Field(default=60.0, gt=0)
    orchestrator: OrchestratorSettings = Field(default_factory=OrchestratorSettings)
    restart: RestartSettings = Field(default_factory=RestartSettings)
    runner: RunnerLaunchSettings = Field(default_factory=RunnerLaunchSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)
    # Passed on to every runner (VAP_CAMERA_POLICY__*), which checks it again just before it connects:
    # set it as the API's (the local demo: VAP_CAMERA_POLICY__ALLOW=127.0.0.0/8).
    camera_policy: CameraPolicyOptions = Field(default_factory=CameraPolicyOptions)

    def consumer_overrides(self) -> dict[str, int]:
        """librdkafka settings of every consumer of this process."""
        return {"session.timeout.ms": int(self.consumer_session_timeout_seconds * 1000)}
