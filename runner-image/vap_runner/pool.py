"""The pool of inference processes: dispatch through shared-memory slots, crash recovery, frame order."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import selectors
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any
from uuid import UUID

from vap_common.detector_config import DetectorConfig
from vap_common.lifecycle import FailureReason
from vap_runner.failure import Failure
from vap_runner.handoff import QUEUED_FILE_FRAMES, Frame
from vap_runner.inference import inference_main, send_message
from vap_runner.metrics import RunnerMetrics
from vap_runner.ordering import FrameOrder
from vap_runner.slots import FrameSlots, SlotRef

log = logging.getLogger(__name__)

# spawn, not fork: a forked child would inherit the Kafka producer's threads and OpenCV's decoder state.
_CONTEXT = multiprocessing.get_context("spawn")
# Frames queued per process: the next one is already there when it finishes one, so it never waits for
# the main loop; more would only make live frames staler.
_FRAMES_PER_PROCESS = 2
# Frames in slots outside the pool: one being decoded, those queued in the hand-off, one waiting in the
# main loop. With these, the reader always finds a free slot and never waits for one.
_FRAMES_OUTSIDE_POOL = 1 + QUEUED_FILE_FRAMES + 1
# A frame whose process died is sent once more; if that one dies too, the frame is given up.
_MAX_ATTEMPTS_PER_FRAME = 2


@dataclass(frozen=True)
class Analysed:
    frame_number: int
    message: bytes  # the encoded FrameResult, ready to publish


@dataclass
class _Task:
    frame_number: int
    slot: SlotRef
    captured_at: datetime
    attempts: int = 0
    started: float | None = None  # when the process began it (it is at the head of its queue)


@dataclass
class _InferenceProcess:
    child: BaseProcess
    conn: Connection
    in_flight: deque[_Task] = field(default_factory=deque)
    ready: bool = False
    killed: bool = False


class DetectorPool:
    def __init__(
        self,
        *,
        config: DetectorConfig,
        size: int,
        scenario_uuid: UUID,
        run_id: str,
        metrics: RunnerMetrics,
        log_level: str,
        inference_timeout_seconds: float,
        max_consecutive_failures: int,
        frame_memory_bytes: int | None = None,
    ) -> None:
        self._config = config
        self._size = size
        self._result_identity = (scenario_uuid, run_id)  # what each process writes into its results
        self._metrics = metrics
        self._log_level = log_level
        self._inference_timeout_seconds = inference_timeout_seconds
        self._max_consecutive_failures = max_consecutive_failures
        # The reader decodes into these; the pool releases a slot when its frame is done.
        self.slots = FrameSlots(size * _FRAMES_PER_PROCESS + _FRAMES_OUTSIDE_POOL, max_bytes=frame_memory_bytes)
        self._order: FrameOrder[Analysed] = FrameOrder()
        self._retry: deque[_Task] = deque()
        self._processes: list[_InferenceProcess] = []
        # One selector for the whole run (process pipes and exit sentinels, plus watch()ed files): building
        # one per wait, as multiprocessing.connection.wait does, costs more than a frame's analysis.
        self._selector = selectors.DefaultSelector()
        self._consecutive_failures = 0
        self.failure: Failure | None = None

    def start(self) -> None:
        self._processes = [self._spawn() for _ in range(self._size)]

    def wait_ready(
        self, *, timeout_seconds: float, stopping: Callable[[], bool], on_tick: Callable[[], None] = lambda: None
    ) -> bool:
        """Wait until every process has built its detector; False on failure, timeout or stop."""
        deadline = time.monotonic() + timeout_seconds
        while not all(process.ready for process in self._processes):
            on_tick()
            if self.failure or stopping():
                return False
            if time.monotonic() > deadline:
                self.failure = Failure(
                    FailureReason.DETECTOR_ERROR, f"inference processes not ready after {timeout_seconds:g} s"
                )
                return False
            self.wait(timeout_seconds=0.2)
        return self.failure is None

    @property
    def pids(self) -> list[int]:
        return [process.child.pid for process in self._processes if process.child.pid is not None]

    @property
    def pending(self) -> int:
        """Frames submitted and not yet returned by :meth:`analysed`."""
        return len(self._order)

    def can_accept(self) -> bool:
        return not self._retry and self._least_busy() is not None

    def submit(self, frame: Frame) -> None:
        """Queue ``frame`` (already in a slot) on the least busy process (check can_accept first)."""
        task = _Task(frame_number=frame.number, slot=frame.slot, captured_at=frame.captured_at)
        self._order.expect(frame.number)
        self._send(task)

    def watch(self, fileobj: Any) -> None:
        """Make :meth:`wait` also return when ``fileobj`` (anything with ``fileno()``) is readable."""
        self._selector.register(fileobj, selectors.EVENT_READ)

    def wait(self, *, timeout_seconds: float) -> None:
        """Block until a process answers or dies, a watched file is readable, or the timeout; then take
        in the answers, replace dead or hung processes and re-send their frames."""
        exited = []
        for key, _ in self._selector.select(timeout_seconds):
            process = key.data
            if process is None:
                continue  # a watched file: the caller looks at it
            if key.fileobj is process.conn:
                self._receive(process)
            else:
                exited.append(process)
        for process in exited:
            self._receive_last_words(process)
            self._replace(process)
        self._kill_hung_processes()
        while self._retry and (idle := self._least_busy()) is not None:
            self._send(self._retry.popleft(), idle)

    def analysed(self) -> list[Analysed]:
        """Frames finished since the last call, in the order they were submitted."""
        return [result for _, result in self._order.ready()]

    def close(self, *, timeout_seconds: float, free_slots: bool = True) -> None:
        """Ask every process to stop, kill those that do not in time, free the slots: no orphans.

        ``free_slots=False`` leaves the frame slots mapped (someone may still write into one); the
        resource tracker removes them when the process ends."""
        for process in self._processes:
            with contextlib.suppress(OSError):  # already gone
                send_message(process.conn, None)
        deadline = time.monotonic() + timeout_seconds
        for process in self._processes:
            process.child.join(max(0.0, deadline - time.monotonic()))
            if process.child.exitcode is None:
                log.warning("inference process did not stop; killing it", extra={"pid": process.child.pid})
                process.child.kill()
                process.child.join()
            process.conn.close()
        self._processes = []
        self._selector.close()
        if free_slots:
            self.slots.close()

    def _spawn(self) -> _InferenceProcess:
        parent_conn, child_conn = _CONTEXT.Pipe()
        child = _CONTEXT.Process(
            target=inference_main,
            args=(child_conn, self._config, self._log_level, *self._result_identity),
            name="vap-runner-inference",
            daemon=True,
        )
        child.start()
        child_conn.close()  # so that the process's death reads as EOF here
        process = _InferenceProcess(child=child, conn=parent_conn)
        self._selector.register(process.conn, selectors.EVENT_READ, process)
        self._selector.register(child.sentinel, selectors.EVENT_READ, process)
        return process

    def _least_busy(self) -> _InferenceProcess | None:
        candidates = [process for process in self._processes if len(process.in_flight) < _FRAMES_PER_PROCESS]
        return min(candidates, key=lambda process: len(process.in_flight), default=None)

    def _send(self, task: _Task, process: _InferenceProcess | None = None) -> None:
        process = process or self._least_busy()
        assert process is not None, "submit() without can_accept()"
        if not process.in_flight:
            task.started = time.monotonic()
        process.in_flight.append(task)
        with contextlib.suppress(OSError):  # the process just died: wait() sees it and re-sends its frames
            # Plain values: a named tuple or an aware datetime takes several times longer to pickle.
            send_message(process.conn, (task.frame_number, tuple(task.slot), task.captured_at.replace(tzinfo=None)))

    def _receive(self, process: _InferenceProcess) -> None:
        """Take in one message (the selector reports the pipe again while more are waiting)."""
        try:
            self._handle(process, process.conn.recv())
        except (EOFError, OSError):
            pass  # it died: its exit sentinel fires and wait() replaces it

    def _receive_last_words(self, process: _InferenceProcess) -> None:
        """Everything a dead process sent before dying: its pipe is at EOF once that is read."""
        with contextlib.suppress(EOFError, OSError):
            while True:
                self._handle(process, process.conn.recv())

    def _handle(self, process: _InferenceProcess, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            process.ready = True
        elif kind == "init_error":
            self.failure = Failure(FailureReason.INVALID_CONFIG, message[1])
        else:
            task = process.in_flight.popleft()  # a process answers in the order it was sent frames
            if process.in_flight:
                process.in_flight[0].started = time.monotonic()
            if kind == "result":
                self._consecutive_failures = 0
                self.slots.release(task.slot)
                self._metrics.inference_seconds.observe(message[3])
                self._order.complete(task.frame_number, Analysed(task.frame_number, message[2]))
            else:
                self._give_up(task, f"detector raised: {message[2]}")
                self._count_failure(f"detector raised: {message[2]}")

    def _replace(self, process: _InferenceProcess) -> None:
        process.child.join()
        exitcode = process.child.exitcode
        self._selector.unregister(process.conn)
        self._selector.unregister(process.child.sentinel)
        process.conn.close()
        self._metrics.inference_restarts.inc()
        log.warning(
            "inference process died; replacing it",
            extra={
                "pid": process.child.pid,
                "exitcode": exitcode,
                "frames_in_flight": [task.frame_number for task in process.in_flight],
            },
        )
        for position, task in enumerate(process.in_flight):
            # Only the frame being analysed can have caused it; the ones queued behind it are innocent.
            if position == 0:
                task.attempts += 1
            task.started = None
            if task.attempts >= _MAX_ATTEMPTS_PER_FRAME:
                self._give_up(task, f"its inference process died {task.attempts} times (last exit code {exitcode})")
            else:
                self._retry.append(task)
        self._count_failure(f"inference process exited with code {exitcode}")
        self._processes[self._processes.index(process)] = self._spawn()

    def _kill_hung_processes(self) -> None:
        now = time.monotonic()
        for process in self._processes:
            head = process.in_flight[0] if process.in_flight else None
            if head and head.started and now - head.started > self._inference_timeout_seconds and not process.killed:
                process.killed = True
                log.warning(
                    "inference process hung; killing it",
                    extra={"pid": process.child.pid, "frame_number": head.frame_number},
                )
                process.child.kill()

    def _give_up(self, task: _Task, why: str) -> None:
        log.error("frame not analysed", extra={"frame_number": task.frame_number, "why": why})
        self._metrics.frames_failed.inc()
        self.slots.release(task.slot)
        self._order.abandon(task.frame_number)

    def _count_failure(self, why: str) -> None:
        self._consecutive_failures += 1
        if self._consecutive_failures >= self._max_consecutive_failures and self.failure is None:
            self.failure = Failure(
                FailureReason.DETECTOR_ERROR, f"{self._consecutive_failures} detector failures in a row; last: {why}"
            )
