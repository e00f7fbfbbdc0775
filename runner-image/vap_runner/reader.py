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
from vap_runner.slots import FrameSlots, SlotRef
from vap_runner.sources import OpenedSource, Source, SourceError, open_source

log = logging.getLogger(__name__)

# How often the reader looks again for a free slot when it has to wait for one (only for a frame
# bigger than the slots, which are re-made once every frame in flight is done).
_SLOT_POLL_SECONDS = 0.01


class ReadOutcome(Enum):
    END_OF_STREAM = "end_of_stream"  # a file read to its end, or max_frames reached
    STOPPED = "stopped"  # stop() was called
    GAVE_UP = "gave_up"  # too many failed connects in a row, or the decoder broke: see ``failure``


class StreamReader:
    """Runs in its own thread so that a live stream is always drained while the main loop works."""

    def __init__(
        self,
        *,
        source: Source,
        settings: RunnerSettings,
        handoff: FrameHandoff,
        slots: FrameSlots,
        metrics: RunnerMetrics,
        on_finish: Callable[[], None],
    ) -> None:
        self._source = source
        self._settings = settings
        self._handoff = handoff
        self._slots = slots
        self._shape: tuple[int, ...] | None = (
            None  # of the last frame: the next one is decoded straight into a slot of it
        )
        self._metrics = metrics
        self._on_finish = on_finish
        self._backoff = Backoff(
            initial_seconds=settings.reconnect_initial_delay_seconds, max_seconds=settings.reconnect_max_delay_seconds
        )
        self._sampler = FrameSampler(settings.target_fps)
        self._camera_policy = settings.address_policy()
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
        if self._thread.ident is not None:  # started
            self._thread.join(timeout_seconds)

    @property
    def running(self) -> bool:
        """The reading thread is still alive (it may be writing into a frame slot)."""
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self.outcome = self._read_until_done()
        except Exception as error:
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
            if failure.reason is FailureReason.CAMERA_ADDRESS_REFUSED:
                self.failure = failure  # not retried: waiting changes no policy
                return ReadOutcome.GAVE_UP
            failed_connects = 0 if got_frames else failed_connects + 1
            if self._source.local_file or failed_connects >= self._settings.max_consecutive_failed_connects:
                self.failure = Failure(
                    failure.reason, f"{failure.message} ({failed_connects} failed connect(s) in a row)"
                )
                return ReadOutcome.GAVE_UP
            delay = self._backoff.delay_seconds(failed_connects)
            log.warning(
                "source lost; reconnecting",
                extra={
                    "camera": self._source.safe_name,
                    "error": failure.message,
                    "failed_connects": failed_connects,
                    "delay_seconds": round(delay, 2),
                },
            )
            if self._stop.wait(delay):
                return ReadOutcome.STOPPED
            self._metrics.reconnects.inc()

    def _connect_and_read(self) -> tuple[bool, Failure | None]:
        """Open the source and read it until it ends: (whether any frame came, why it ended or None
        when it ended normally: a file's end after at least one frame, or max_frames)."""
        try:
            opened = open_source(
                self._source,
                camera_policy=self._camera_policy,
                open_timeout_seconds=self._settings.open_timeout_seconds,
                read_timeout_seconds=self._settings.read_timeout_seconds,
                decode_threads=self._settings.decode_threads,
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
            return got_frames, None if got_frames else Failure(
                FailureReason.DECODE_ERROR, f"{self._source.safe_name} opened but no frame could be decoded"
            )
        if got_frames:
            return True, Failure(FailureReason.SOURCE_STALLED, f"{self._source.safe_name} stopped sending frames")
        return False, Failure(FailureReason.SOURCE_STALLED, f"{self._source.safe_name} opened but sent no frames")

    def _pump(self, opened: OpenedSource) -> bool:
        """Read frames until the stream ends, stalls (read timeout), stop() or max_frames; True if any came."""
        frame_index = 0  # in this connection: a file's frame number
        while not self._stop.is_set() and not self._max_frames_reached():
            slot = self._decode(opened)
            if slot is None:
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
            if not self._sampler.accept(clock_seconds):
                self._slots.release(slot)
            elif not self._handoff.put(Frame(number=number, slot=slot, captured_at=captured_at)):
                break
        return frame_index > 0

    def _decode(self, opened: OpenedSource) -> SlotRef | None:
        """The next frame in a slot, or None at the end of the stream or on stop. OpenCV decodes it
        straight into the slot when it has the last frame's size; otherwise (the first frame, a new
        size) into a new array, which is then copied into a slot sized for it."""
        slot = view = None
        if self._shape:
            if (slot := self._wait_for_slot(self._shape)) is None:
                return None
            view = self._slots.view(slot)
        ok, image = opened.capture.read(view)
        if ok and image is view:
            return slot
        if slot is not None:
            self._slots.release(slot)
        if not ok:
            return None
        self._shape = image.shape
        slot = self._wait_for_slot(image.shape)
        if slot is not None:
            self._slots.view(slot)[...] = image
        return slot

    def _wait_for_slot(self, shape: tuple[int, ...]) -> SlotRef | None:
        """A free slot for ``shape``; None on stop."""
        while (slot := self._slots.acquire(shape)) is None:
            if self._stop.wait(_SLOT_POLL_SECONDS):
                return None
        return slot

    def _max_frames_reached(self) -> bool:
        return self._settings.max_frames is not None and self._frames_read >= self._settings.max_frames
