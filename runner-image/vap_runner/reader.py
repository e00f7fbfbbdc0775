"""The reading thread: opens the source, reconnects live streams, samples frames, hands them over."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import Enum

from vap_common.lifecycle import FailureReason
from vap_runner.backoff import Backoff
from vap_runner.failure import Failure
from vap_runner.handoff import Frame, FrameHandoff
from vap_runner.metrics import RunnerMetrics
from vap_runner.sampling import FrameSampler
from vap_runner.settings import RunnerSettings
from vap_runner.sources import OpenedSource, Source, SourceError, open_source

log = logging.getLogger(__name__)

class ReadOutcome(Enum):
    END_OF_STREAM = "end_of_stream"  # a file read to its end, or max_frames reached
    STOPPED = "stopped"  # stop() was called
    GAVE_UP = "gave_up"  # too many failed connects in a row, or the decoder broke: see ``failure``


class StreamReader:
    """Runs in its own thread so that a live stream is always drained while the main loop works."""

    def __init__(
        self, *, source: Source, settings: RunnerSettings, handoff: FrameHandoff, metrics: RunnerMetrics, on_finish: Callable[[], None]
    ) -> None:
        self._source = source
        self._settings = settings
        self._handoff = handoff
        self._metrics = metrics
        self._on_finish = on_finish
        self._backoff = Backoff(initial_seconds=settings.reconnect_initial_delay_seconds, max_seconds=settings.reconnect_max_delay_seconds)
        self._sampler = FrameSampler(settings.target_fps)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reader", daemon=True)
        self._frames_read = 0
        self._started_at = datetime.now(UTC)
        self.is_open = False
        self.live: bool | None = None  # known once opened
        self.outcome: ReadOutcome | None = None
        self.failure: Failure | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._handoff.close()

    def join(self, timeout_seconds: float) -> None:
        self._thread.join(timeout_seconds)

    def _run(self) -> None:
        try:
            self.outcome = self._read_until_done()
        except Exception as error:  # noqa: BLE001 - a decoder bug must end the run, not hang it
            log.exception("reader failed")
            self.failure = Failure(FailureReason.DECODE_ERROR, f"reading {self._source.safe_name} failed: {error}")
            self.outcome = ReadOutcome.GAVE_UP
        self._on_finish()

    def _read_until_done(self) -> ReadOutcome:
        failed_connects = 0
        while True:
            got_frames, failure = self._connect_and_read()
            if self._stop.is_set():
                return ReadOutcome.STOPPED
            if failure is None:
                return ReadOutcome.END_OF_STREAM
            failed_connects = 0 if got_frames else failed_connects + 1
            if self._source.local_file or failed_connects >= self._settings.max_consecutive_failed_connects:
                self.failure = Failure(failure.reason, f"{failure.message} ({failed_connects} failed connect(s) in a row)")
                return ReadOutcome.GAVE_UP
            delay = self._backoff.delay_seconds(failed_connects)
            log.warning(
                "source lost; reconnecting",
                extra={"camera": self._source.safe_name, "error": failure.message, "failed_connects": failed_connects, "delay_seconds": round(delay, 2)},
            )
            if self._stop.wait(delay):
                return ReadOutcome.STOPPED
            self._metrics.reconnects.inc()

    def _connect_and_read(self) -> tuple[bool, Failure | None]:
        """Open the source and read it until it ends: (whether any frame came, why it ended or None
        when it ended normally: a file's end after at least one frame, or max_frames)."""
        try:
            opened = open_source(
                self._source, open_timeout_seconds=self._settings.open_timeout_seconds, read_timeout_seconds=self._settings.read_timeout_seconds
            )
        except SourceError as error:
            return False, Failure(error.reason, str(error))
        log.info("source open", extra={"camera": self._source.safe_name, "live": opened.live, "fps": opened.fps})
        self._handoff.keep_latest = self.live = opened.live
        self.is_open = True
        try:
            got_frames = self._pump(opened)
        finally:
            self.is_open = False
            opened.release()
        if self._max_frames_reached():
            return True, None
        if not opened.live:
            return got_frames, None if got_frames else Failure(FailureReason.DECODE_ERROR, f"{self._source.safe_name} opened but no frame could be decoded")
        if got_frames:
            return True, Failure(FailureReason.SOURCE_STALLED, f"{self._source.safe_name} stopped sending frames")
        return False, Failure(FailureReason.SOURCE_STALLED, f"{self._source.safe_name} opened but sent no frames")

    def _pump(self, opened: OpenedSource) -> bool:
        """Read frames until the stream ends, stalls (read timeout), stop() or max_frames; True if any came."""
        frame_index = 0  # in this connection: a file's frame number
        while not self._stop.is_set() and not self._max_frames_reached():
            ok, image = opened.capture.read()
            if not ok:
                break
            number = frame_index if not opened.live else self._frames_read
            frame_index += 1
            self._frames_read += 1
            self._metrics.frames_read.inc()
            if opened.live:
                clock_seconds, captured_at = time.monotonic(), datetime.now(UTC)
            else:
                # A file has no capture time: its frames are placed on the media clock from the run's start.
                clock_seconds = opened.media_seconds(number)
                captured_at = self._started_at + timedelta(seconds=clock_seconds)
            if self._sampler.accept(clock_seconds) and not self._handoff.put(Frame(number=number, image=image, captured_at=captured_at)):
                break
        return frame_index > 0

    def _max_frames_reached(self) -> bool:
        return self._settings.max_frames is not None and self._frames_read >= self._settings.max_frames
