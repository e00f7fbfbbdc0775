"""Results Kafka has not acknowledged yet: held in frame order within a memory budget, in front of the
producer, so that a broker outage costs the oldest results of a live camera, never the runner.

librdkafka cannot drop the oldest message of its own queue, and one it times out is lost with every
message behind it. So the producer never times a result out (``message.timeout.ms=0``), and it is
handed results only while its share of the budget has room; the rest wait here. In order:

1. Order: results leave (handed to the producer or dropped) in the order they came: frame order.
2. Budget: results held here plus those in the producer use at most ``budget_bytes`` (their bytes
   plus an estimate of what each costs besides). Live (``keep_newest``): a result that does not fit
   drops the oldest held ones, each counted. A file: nothing is dropped; :meth:`has_room` turns False
   at the budget and True again below ``RESUME_SHARE`` of it, and the runner takes no frame meanwhile
   (the results of frames already in analysis still come in, past the budget).
3. Counting: every result added is acknowledged, dropped (over the budget), lost (the producer
   reported it undelivered, or it was abandoned at exit) or still undelivered; none is counted twice.

Healthy Kafka costs one comparison per result: with nothing held, a result goes straight to the producer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# About what a result costs besides its bytes: here a bytes object and its place in the deque, in
# librdkafka its message header and the copy of the key. An estimate: the budget is of memory, roughly.
ENTRY_OVERHEAD_BYTES = 200
# Of the budget, what the producer may hold (the rest waits here, where the oldest can be dropped)...
PRODUCER_SHARE = 0.25
# ... and at most this many results: ~10 s of a file at full speed, 100 times what one 100 ms
# linger batch needs, so the producer is never the bottleneck while Kafka keeps up.
PRODUCER_MAX_RESULTS = 10_000
# A paused file goes on once what is undelivered has fallen below this share of the budget (not at
# the first acknowledgement: pausing and resuming at every result would only add wake-ups).
RESUME_SHARE = 0.75


@dataclass(frozen=True)
class Drops:
    """Results dropped over the budget since the last report: how many, the first and last frame."""

    count: int
    first_frame: int
    last_frame: int


class UndeliveredResults:
    """The results of one run not yet acknowledged by Kafka (see the module docstring).

    ``send(value)`` hands one result to the producer and raises ``BufferError`` when it has no room;
    the producer's delivery report must then call :meth:`delivered` with the value's length.
    """

    def __init__(
        self, *, budget_bytes: int, send: Callable[[bytes], None], on_drop: Callable[[int], None] = lambda _: None
    ) -> None:
        self.budget_bytes = budget_bytes
        self.producer_share_bytes = max(1, int(budget_bytes * PRODUCER_SHARE))
        self.keep_newest = False  # live: drop the oldest over the budget; a file: pause
        self._send = send
        self._on_drop = on_drop
        self._held: deque[tuple[int, bytes]] = deque()
        self._held_bytes = 0
        self._producer_count = 0
        self._producer_bytes = 0
        # Set when the producer had no room for the oldest held result, cleared by its next delivery
        # report: until then no result is tried, so a smaller one behind it never slips into the
        # producer once it is dropped, and a run of drops stays one run of frames.
        self._producer_full = False
        self._paused = False
        self._drops: Drops | None = None
        self.added = 0
        self.acknowledged = 0
        self.dropped = 0  # over the budget, oldest first
        self.lost = 0  # reported undelivered by the producer, or abandoned at exit

    @property
    def held(self) -> int:
        """Results waiting here for room in the producer."""
        return len(self._held)

    @property
    def undelivered(self) -> int:
        """Results added and neither acknowledged, dropped nor lost (here or in the producer)."""
        return len(self._held) + self._producer_count

    @property
    def undelivered_bytes(self) -> int:
        return self._held_bytes + self._producer_bytes

    def add(self, frame_number: int, value: bytes) -> None:
        """Take the next result (frame order); drop the oldest held ones if it does not fit a live budget."""
        self.added += 1
        size = len(value) + ENTRY_OVERHEAD_BYTES
        if not self._held and self._producer_has_room(size):
            try:
                self._send(value)
            except BufferError:
                self._producer_full = True
            else:
                self._producer_count += 1
                self._producer_bytes += size
                return
        self._held.append((frame_number, value))
        self._held_bytes += size
        if self.keep_newest:
            self._drop_over_budget()

    def pump(self) -> None:
        """Hand held results to the producer, oldest first, while it has room."""
        held = self._held
        while held:
            size = len(held[0][1]) + ENTRY_OVERHEAD_BYTES
            if not self._producer_has_room(size):
                return
            try:
                self._send(held[0][1])
            except BufferError:
                self._producer_full = True
                return
            held.popleft()
            self._held_bytes -= size
            self._producer_count += 1
            self._producer_bytes += size

    def delivered(self, length: int, *, ok: bool) -> None:
        """The producer's delivery report of a result of ``length`` bytes: acknowledged or not."""
        self._producer_count -= 1
        self._producer_bytes -= length + ENTRY_OVERHEAD_BYTES
        self._producer_full = False
        if ok:
            self.acknowledged += 1
        else:
            self.lost += 1

    def has_room(self) -> bool:
        """A file's pause signal: False from the budget until below ``RESUME_SHARE`` of it again (live: always True)."""
        if self.keep_newest:
            return True
        used = self._held_bytes + self._producer_bytes
        if self._paused:
            self._paused = used > self.budget_bytes * RESUME_SHARE
        else:
            self._paused = used >= self.budget_bytes
        return not self._paused

    def take_drops(self) -> Drops | None:
        """The drops since the last call, if any."""
        drops, self._drops = self._drops, None
        return drops

    def abandon(self) -> int:
        """Give up the held results (exit): counted as lost; returns how many."""
        count = len(self._held)
        self._held.clear()
        self._held_bytes = 0
        self.lost += count
        return count

    def _producer_has_room(self, size: int) -> bool:
        # An empty producer takes any result, even one larger than its share: a result is never stuck.
        if self._producer_count == 0:
            return True
        if not self._producer_full:
            self._producer_full = (
                self._producer_count >= PRODUCER_MAX_RESULTS or self._producer_bytes + size > self.producer_share_bytes
            )
        return not self._producer_full

    def _drop_over_budget(self) -> None:
        """Drop the oldest held results until the newest fits (the newest one itself is always kept)."""
        held = self._held
        count = 0
        first = last = -1
        while len(held) > 1 and self._held_bytes + self._producer_bytes > self.budget_bytes:
            frame_number, value = held.popleft()
            self._held_bytes -= len(value) + ENTRY_OVERHEAD_BYTES
            if count == 0:
                first = frame_number
            last = frame_number
            count += 1
        if count:
            self.dropped += count
            previous = self._drops
            self._drops = (
                Drops(count + previous.count, previous.first_frame, last) if previous else Drops(count, first, last)
            )
            self._on_drop(count)
