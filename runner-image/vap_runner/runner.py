"""One scenario's run: source -> inference pool -> Kafka, with the status reports and exit codes of
``vap_common.runner_contract``."""

from __future__ import annotations

import logging
import threading
import time
import uuid

from vap_common.detector_config import DetectorConfig, InvalidDetectorConfig
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.redact import redact_text, redact_url
from vap_common.runner_contract import RunnerExit
from vap_runner.detectors import validate_config
from vap_runner.failure import Failure
from vap_runner.handoff import Frame, FrameHandoff, Wakeup
from vap_runner.metrics import RunnerMetrics
from vap_runner.pool import DetectorPool
from vap_runner.probes import Health, serve
from vap_runner.publisher import DownstreamBlocked, ResultPublisher
from vap_runner.reader import ReadOutcome, StreamReader
from vap_runner.settings import RunnerSettings
from vap_runner.slots import shared_memory_budget
from vap_runner.sources import InvalidSource, Source, parse_source

log = logging.getLogger(__name__)

# A failure that could not be reported: exit as a crash, so the runtime restarts the runner (and, if it
# keeps failing, reports RunnerCrashLoop itself) instead of leaving the scenario without a status.
FAILURE_NOT_REPORTED = 1
# The main loop wakes at least this often: liveness beat, signals, hung inference processes.
_TICK_SECONDS = 0.2
# Longest wait for one status event to be acknowledged.
_STATUS_ACK_SECONDS = 10.0
# How long stopped inference processes get to exit before they are killed.
_WORKER_STOP_SECONDS = 5.0
# How long the reader gets to finish the frame it decodes once asked to stop.
_READER_STOP_SECONDS = 5.0
# Of the SIGTERM grace period, at most this share goes to finishing frames in flight; what is left
# of it (at least the rest) to delivering their results.
_DRAIN_SHARE = 0.75
# Of the grace period, the share the runner plans to use: its runtime SIGKILLs it at the end of it.
_GRACE_USED = 0.9


class Runner:
    def __init__(self, settings: RunnerSettings) -> None:
        self._settings = settings
        # One id per process start: the inbox dedupes on (scenario, run, frame), so a restarted runner
        # never collides with the results of the run before it.
        self.run_id = uuid.uuid4().hex[:16]
        self.metrics = RunnerMetrics()
        self._stop_requested = threading.Event()
        self._stop_requested_at = 0.0  # monotonic
        self._wakeup = Wakeup()
        self._reader: StreamReader | None = None
        self._announced_active = False  # `active` is published once, after the first analysed frame
        self.health = Health(
            liveness_timeout_seconds=settings.liveness_timeout_seconds,
            is_ready=lambda: bool(self._reader and self._reader.is_open),
        )
        self.http_port: int | None = None

    def request_stop(self) -> None:
        """SIGTERM/SIGINT: stop reading, finish the frames in flight, flush, exit 0 without a status."""
        if not self._stop_requested.is_set():
            self._stop_requested_at = time.monotonic()
        self._stop_requested.set()
        self._wakeup.set()

    def run(self) -> int:
        settings = self._settings
        log.info(
            "runner starting",
            extra={
                "scenario_uuid": str(settings.scenario_uuid),
                "run_id": self.run_id,
                "worker_id": settings.worker_id,
                "camera": redact_url(settings.camera_url),
                "detector": settings.detector.name,
                "max_workers": settings.max_workers,
                "target_fps": settings.target_fps,
            },
        )
        try:
            detector_config = validate_config(settings.detector.name, settings.detector.settings)
            source = parse_source(settings.camera_url, allow_files=settings.allow_file_sources)
            invalid = None
        except (InvalidDetectorConfig, InvalidSource) as error:
            invalid = Failure(FailureReason.INVALID_CONFIG, str(error))
        publisher = ResultPublisher(
            kafka=settings.kafka,
            scenario_uuid=settings.scenario_uuid,
            run_id=self.run_id,
            outage_after_seconds=settings.downstream_blocked_timeout_seconds,
            outage_limit_seconds=settings.downstream_outage_limit_seconds,
            budget_bytes=int(settings.undelivered_results_mib * 2**20),
            linger_ms=settings.linger_ms(local_file=invalid is not None or source.local_file),
            metrics=self.metrics,
            on_wait=self.health.beat,
        )
        try:
            return (
                self._report_failure(publisher, invalid) if invalid else self._run(publisher, detector_config, source)
            )
        finally:
            publisher.close()  # what Kafka never acknowledged is counted and logged as dropped

    def _run(self, publisher: ResultPublisher, detector_config: DetectorConfig, source: Source) -> int:
        settings = self._settings
        server = serve(
            host=settings.http_host, port=settings.http_port, health=self.health, registry=self.metrics.registry
        )
        self.http_port = server.server_address[1]
        log.info("http endpoint listening", extra={"port": self.http_port})
        pool = DetectorPool(
            config=detector_config,
            size=settings.max_workers,
            scenario_uuid=settings.scenario_uuid,
            run_id=self.run_id,
            metrics=self.metrics,
            log_level=settings.log_level,
            inference_timeout_seconds=settings.inference_timeout_seconds,
            max_consecutive_failures=settings.max_consecutive_detector_failures,
            frame_memory_bytes=shared_memory_budget(settings.frame_memory_mib * 2**20),
        )
        handoff = FrameHandoff(wakeup=self._wakeup, on_drop=lambda frame: self._drop(pool, frame))
        self._reader = StreamReader(
            source=source,
            settings=settings,
            handoff=handoff,
            slots=pool.slots,
            metrics=self.metrics,
            on_finish=self._wakeup.set,
        )
        try:
            pool.watch(self._wakeup)
            pool.start()
            if not pool.wait_ready(
                timeout_seconds=settings.inference_start_timeout_seconds,
                stopping=self._stop_requested.is_set,
                on_tick=self.health.beat,
            ):
                return self._report_failure(publisher, pool.failure) if pool.failure else RunnerExit.DONE
            log.info("inference processes ready", extra={"pids": pool.pids})
            self._reader.start()
            return self._analyse(pool, handoff, publisher)
        finally:
            self._reader.stop()
            # The reader may be decoding straight into a frame slot: unmapping the slots under it is a
            # segfault, so they are freed only once it has stopped (else at process exit).
            self._reader.join(timeout_seconds=_READER_STOP_SECONDS)
            pool.close(timeout_seconds=_WORKER_STOP_SECONDS, free_slots=not self._reader.running)
            server.shutdown()
            server.server_close()

    def _analyse(self, pool: DetectorPool, handoff: FrameHandoff, publisher: ResultPublisher) -> int:
        """The main loop: feed the pool, publish in order, until the source ends, fails, or a stop."""
        reader = self._reader
        assert reader is not None
        started = time.monotonic()
        pending: Frame | None = None
        drain_deadline: float | None = None
        try:
            while True:
                self.health.beat()
                if self._stop_requested.is_set() and drain_deadline is None:
                    log.info("stop requested; finishing frames in flight", extra={"frames_in_flight": pool.pending})
                    reader.stop()
                    pending = None
                    drain_deadline = self._stop_requested_at + self._grace_budget() * _DRAIN_SHARE
                pool.wait(timeout_seconds=_TICK_SECONDS)
                self._wakeup.clear()
                self._publish(pool, publisher)
                if pool.failure:
                    return self._report_failure(publisher, pool.failure)
                if drain_deadline is not None:
                    if pool.pending == 0 or time.monotonic() > drain_deadline:
                        return self._finish_stopped(pool, publisher, started)
                    continue
                reader_done = reader.outcome is not None  # read before taking: its last frame is then in the handoff
                if reader.live is not None:
                    publisher.live = reader.live
                if not publisher.has_room():
                    continue  # a file waits for Kafka: no frame is taken, so the reader stops at the full handoff
                pending = pending or handoff.take()
                while pending is not None and pool.can_accept():
                    pool.submit(pending)
                    pending = handoff.take()
                if reader_done and pending is None and pool.pending == 0:
                    return self._finish_source(reader, pool, publisher, started)
        except DownstreamBlocked as error:
            return self._report_failure(publisher, Failure(FailureReason.DOWNSTREAM_BLOCKED, str(error)))

    def _drop(self, pool: DetectorPool, frame: Frame) -> None:
        """A live frame replaced by a newer one before analysis."""
        pool.slots.release(frame.slot)
        self.metrics.frames_dropped.inc()

    def _publish(self, pool: DetectorPool, publisher: ResultPublisher) -> None:
        for analysed in pool.analysed():
            publisher.publish_result(analysed.frame_number, analysed.message)
            if not self._announced_active:
                publisher.send_status(ScenarioStatus.ACTIVE)
                self._announced_active = True
            self.metrics.frames_analysed.inc()
        publisher.poll()

    def _finish_source(
        self, reader: StreamReader, pool: DetectorPool, publisher: ResultPublisher, started: float
    ) -> int:
        if reader.outcome is ReadOutcome.GAVE_UP and reader.failure:
            return self._report_failure(publisher, reader.failure)
        # Every result is delivered, however long Kafka is away, up to its outage limit (poll() raises).
        while not publisher.flush(timeout_seconds=1.0):
            publisher.poll()
            if self._stop_requested.is_set():
                log.info("stop requested while results wait for Kafka")
                return self._finish_stopped(pool, publisher, started)
        self._log_summary("stream finished", started, publisher)
        if reader.live:
            return RunnerExit.DONE  # max_frames on a live stream: a test or demo limit, not the end of the camera
        # Every result is stored; if this event is lost, the runtime still reports `inactive` on exit 0.
        publisher.publish_status(ScenarioStatus.INACTIVE, message="end of stream", timeout_seconds=_STATUS_ACK_SECONDS)
        return RunnerExit.DONE

    def _finish_stopped(self, pool: DetectorPool, publisher: ResultPublisher, started: float) -> int:
        """Deliver what can be within the grace period (Kafka may be away); the rest is counted as dropped."""
        if pool.pending:
            log.warning("grace period over; frames in flight abandoned", extra={"frames": pool.pending})
        grace = self._grace_budget()
        delivery_seconds = max(self._stop_requested_at + grace - time.monotonic(), grace * (1 - _DRAIN_SHARE))
        if not publisher.flush(timeout_seconds=delivery_seconds):
            log.error("Kafka did not acknowledge every result before the grace period ended")
        publisher.close()
        self._log_summary("stopped on request", started, publisher)
        return RunnerExit.DONE

    def _grace_budget(self) -> float:
        return self._settings.grace_period_seconds * _GRACE_USED

    def _report_failure(self, publisher: ResultPublisher, failure: Failure) -> int:
        log.error("runner failed", extra={"reason": failure.reason.value, "error": failure.message})
        self._write_termination_message(failure)
        publisher.flush(timeout_seconds=_STATUS_ACK_SECONDS)  # results already analysed are still worth keeping
        reported = publisher.publish_status(
            ScenarioStatus.FAILED,
            reason=failure.reason,
            message=failure.message[:2000],
            timeout_seconds=_STATUS_ACK_SECONDS,
        )
        return RunnerExit.FAILED if reported else FAILURE_NOT_REPORTED

    def _write_termination_message(self, failure: Failure) -> None:
        """``<ReasonCode>: message`` for the operator, which reads it from the Pod's container status."""
        path = self._settings.termination_log_path
        if path.exists():
            path.write_text(f"{failure.reason.value}: {redact_text(failure.message)}"[:4096])

    def _log_summary(self, message: str, started: float, publisher: ResultPublisher) -> None:
        elapsed = time.monotonic() - started
        analysed = self.metrics.total("frames_analysed")
        log.info(
            message,
            extra={
                "frames_read": self.metrics.total("frames_read"),
                "frames_analysed": analysed,
                "frames_dropped": self.metrics.total("frames_dropped"),
                "results_acknowledged": publisher.acknowledged,
                "results_dropped": self.metrics.results_dropped_total(),
                "elapsed_seconds": round(elapsed, 3),
                "analysed_fps": round(analysed / elapsed, 2) if elapsed else None,
            },
        )
