"""The runner's one settings object: the ``VAP_*`` names that ``runner_environment()`` writes, plus
the runner's own knobs (timeouts, reconnects, shutdown), each with its unit in its name."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from vap_common.address_policy import AddressPolicy
from vap_common.runner_contract import RUNNER_HTTP_PORT
from vap_common.settings import CameraPolicyOptions, CommonSettings


class DetectorSettings(BaseModel):
    """``VAP_DETECTOR__NAME`` and ``VAP_DETECTOR__SETTINGS`` (a JSON object), checked by the registry."""

    name: str = "mock"
    settings: dict[str, Any] = Field(default_factory=dict)


class RunnerSettings(CommonSettings):
    scenario_uuid: UUID
    # May carry a password: only ever logged through vap_common.redact.
    camera_url: str = Field(min_length=1)
    worker_id: str = "local"
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    max_workers: int = Field(default=1, ge=1, le=64)
    # None analyses every frame; files are sampled on their own clock, live streams on the wall clock.
    target_fps: float | None = Field(default=None, gt=0)
    http_host: str = "0.0.0.0"  # the Pod's probes and Prometheus reach it from outside the container
    http_port: int = Field(default=RUNNER_HTTP_PORT, ge=0, le=65535)

    # FFmpeg gives up connecting / waiting for the next packet after these.
    open_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=10.0, gt=0)
    # Live streams: delay before reconnect n is min(max, initial * 2**(n-1)), less up to half of it at random
    # so that many runners of one camera server do not reconnect in step.
    reconnect_initial_delay_seconds: float = Field(default=1.0, gt=0)
    reconnect_max_delay_seconds: float = Field(default=30.0, gt=0)
    # With the defaults, about 3.5 minutes of outage before `failed` (SourceUnreachable).
    max_consecutive_failed_connects: int = Field(default=10, ge=1)
    # Local paths and file:// URLs; a multi-tenant deployment turns this off so users cannot read the Pod's files.
    allow_file_sources: bool = True
    # What a network camera's host may resolve to, checked just before each connect (vap_runner.destination):
    # the operator passes its own, with the platform servers it knows (VAP_CAMERA_POLICY__PLATFORM).
    camera_policy: CameraPolicyOptions = Field(default_factory=CameraPolicyOptions)
    # FFmpeg threads decoding the stream; 0 lets FFmpeg take one per core. One costs the least CPU per frame
    # (frame threading took ~35% more in bench/) and adds no delay (frame threading holds threads-1
    # frames back), and it leaves the other cores to the inference processes and the node's other runners.
    decode_threads: int = Field(default=1, ge=0, le=64)
    # Stop as at the end of the stream after this many frames are read (tests, benchmarks, demos).
    max_frames: int | None = Field(default=None, ge=1)

    # SIGTERM to SIGKILL: the runner finishes frames in flight and flushes within the first 90% of it.
    # Both runtimes set it to their own stop grace (VAP_RUNNER__STOP_GRACE_SECONDS of the operator).
    grace_period_seconds: float = Field(default=20.0, gt=0)
    # Results wait up to this long to go to Kafka together: at full speed a file's results then take ten
    # requests a second, not hundreds: each costs the broker CPU (4x less broker CPU per file in bench/).
    results_linger_ms: int = Field(default=100, ge=0, le=5_000)
    # The same for a network source (a camera: a few results a second, each of which would wait the whole
    # linger): it is most of the capture -> stored latency (bench/delivery_bench.py).
    live_results_linger_ms: int = Field(default=5, ge=0, le=5_000)
    # Decoded frames waiting for or in analysis live in /dev/shm; they use at most this much of it (and at
    # most 3/4 of its free space): about 40 frames of 1080p.
    frame_memory_mib: int = Field(default=256, ge=16)
    # Kafka acknowledging no result for this long while results wait is an outage: logged, and ended by a
    # log line (and a status event if results were dropped). Not a failure any more: see the next two.
    downstream_blocked_timeout_seconds: float = Field(default=60.0, gt=0)
    # Kafka acknowledging no result for this long is `failed` (DownstreamBlocked). Until then a live stream
    # keeps analysing and a file waits: an hour rides out a broker restart, an upgrade or a network
    # partition, and is still short enough that a runner that can never deliver is seen failing the same day.
    downstream_outage_limit_seconds: float = Field(default=3600.0, gt=0)
    # Results waiting for Kafka (vap_runner.undelivered) use at most this much memory; over it a live stream
    # drops the oldest (vap_runner_results_dropped_total{cause="budget"}) and a file stops reading. A result
    # takes ~0.45 KB with its overhead (a few detections; more take more): 64 MiB is ~150,000 results, ~4 hours
    # of a 10 fps camera, more than the outage limit, and fits beside the runner (~100 MiB) and its inference processes
    # in the Pod's 512 MiB memory request.
    undelivered_results_mib: float = Field(default=64.0, gt=0)
    # An inference process busy longer than this on one frame is killed and replaced, like a crashed one.
    inference_timeout_seconds: float = Field(default=30.0, gt=0)
    # Inference processes must have built their detector within this (a large ONNX model takes a while).
    inference_start_timeout_seconds: float = Field(default=60.0, gt=0)
    # Inference-process crashes or detector exceptions in a row (no frame analysed in between) before
    # `failed` (DetectorError).
    max_consecutive_detector_failures: int = Field(default=5, ge=1)
    # Where the reason of a `failed` run is written for Kubernetes (the container's termination message).
    # Written only when the file already exists, i.e. Kubernetes mounted it: never created elsewhere.
    termination_log_path: Path = Path("/dev/termination-log")
    # Where the exit code is written as the process ends (set by the local runtime, which may have
    # to adopt this runner after its own restart and then cannot wait() for it). None: not written.
    exit_code_file: Path | None = None
    # /healthz fails when the main loop has not ticked for this long.
    liveness_timeout_seconds: float = Field(default=30.0, gt=0)

    def address_policy(self) -> AddressPolicy:
        """The camera policy of this runner: its own Kafka refused too, and names resolved afresh at each
        check (it checks what it is about to connect to)."""
        return self.camera_policy.policy(platform=self.platform_servers(), remember=False)

    def linger_ms(self, *, local_file: bool) -> int:
        """How long results wait to go to Kafka together: a file's for throughput, a camera's for latency."""
        return self.results_linger_ms if local_file else self.live_results_linger_ms
