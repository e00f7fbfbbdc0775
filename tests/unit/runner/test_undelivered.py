"""The undelivered-results buffer in front of the producer: budget, oldest dropped first and counted
exactly, frame order kept, a file's pause signal. A fake producer stands for librdkafka: it takes
results until it is full and acknowledges them when the test says so."""

from __future__ import annotations

import pytest

from vap_runner import undelivered
from vap_runner.undelivered import ENTRY_OVERHEAD_BYTES, RESUME_SHARE, Drops, UndeliveredResults

RESULT_BYTES = 300  # a result's value; with the overhead it counts 500 bytes
COUNTED = RESULT_BYTES + ENTRY_OVERHEAD_BYTES


def value(frame_number: int) -> bytes:
    return f"{frame_number:08d}".encode().ljust(RESULT_BYTES, b".")


def frame_of(data: bytes) -> int:
    return int(data[:8])


class FakeProducer:
    """librdkafka's part: a queue of results handed over; ``available`` False is a full local queue."""

    def __init__(self) -> None:
        self.queued: list[bytes] = []
        self.acknowledged: list[bytes] = []
        self.available = True
        self.results: UndeliveredResults | None = None

    def produce(self, data: bytes) -> None:
        if not self.available:
            raise BufferError("Local: Queue full")
        self.queued.append(data)

    def ack(self, count: int | None = None) -> None:
        """The broker acknowledges the oldest ``count`` queued results (all by default)."""
        assert self.results is not None
        taken = self.queued[: len(self.queued) if count is None else count]
        del self.queued[: len(taken)]
        for data in taken:
            self.acknowledged.append(data)
            self.results.delivered(len(data), ok=True)

    def recover(self) -> None:
        """Kafka is back: acknowledge and hand on until nothing is left (what poll() does in the runner)."""
        assert self.results is not None
        while self.queued or self.results.held:
            self.ack()
            self.results.pump()


def make(budget_results: int, *, live: bool) -> tuple[UndeliveredResults, FakeProducer, list[int]]:
    producer = FakeProducer()
    drops: list[int] = []
    results = UndeliveredResults(budget_bytes=budget_results * COUNTED, send=producer.produce, on_drop=drops.append)
    results.keep_newest = live
    producer.results = results
    return results, producer, drops


def test_healthy_kafka_takes_every_result_straight_and_nothing_is_held() -> None:
    results, producer, drops = make(100, live=True)
    for number in range(1000):
        results.add(number, value(number))
        if number % 10 == 9:
            producer.ack()
        assert results.held == 0
    producer.ack()
    assert [frame_of(data) for data in producer.acknowledged] == list(range(1000))
    assert (results.acknowledged, results.dropped, results.undelivered, results.undelivered_bytes, drops) == (
        1000,
        0,
        0,
        0,
        [],
    )


def test_live_over_budget_drops_the_oldest_held_counted_exactly_and_delivers_the_rest_in_order() -> None:
    results, producer, drops = make(100, live=True)  # 100 results of budget, a quarter of it the producer's
    for number in range(1000):  # Kafka away: nothing is acknowledged
        results.add(number, value(number))
        assert results.undelivered_bytes <= results.budget_bytes
    in_producer = len(producer.queued)
    assert in_producer == 25 and results.held == 75
    assert results.dropped == sum(drops) == 1000 - 100
    assert results.take_drops() == Drops(count=900, first_frame=25, last_frame=924)
    assert results.take_drops() is None  # reported once

    producer.recover()
    delivered = [frame_of(data) for data in producer.acknowledged]
    # What the producer already had (the oldest of all: librdkafka cannot drop them), then the newest
    # 75: every dropped one is older than every result kept in the buffer.
    assert delivered == list(range(25)) + list(range(925, 1000))
    assert results.acknowledged + results.dropped == results.added == 1000 and results.undelivered == 0


def test_drops_of_several_bursts_add_up_and_the_report_spans_them() -> None:
    results, producer, _ = make(40, live=True)
    for number in range(100):
        results.add(number, value(number))
    producer.ack(5)  # a little gets through, then Kafka stalls again
    results.pump()
    for number in range(100, 150):
        results.add(number, value(number))
    drops = results.take_drops()
    assert drops is not None and drops.count == results.dropped == 150 - 40 - 5
    assert (drops.first_frame, drops.last_frame) == (10, 119)  # 10-69, then 75-119 (70-74 went to the producer)
    producer.recover()
    delivered = [frame_of(data) for data in producer.acknowledged]
    assert delivered == sorted(delivered) and len(delivered) + results.dropped == 150


def test_a_smaller_result_never_slips_past_dropped_larger_ones_into_the_producer() -> None:
    results, producer, _ = make(40, live=True)

    def small(number: int) -> bytes:
        return value(number)

    def large(number: int) -> bytes:
        return value(number) * 2

    for number in range(9):
        results.add(number, small(number))  # the producer's share: 10 results of this size, 9 taken
    results.add(9, large(9))  # does not fit the share's last place: held
    for number in range(10, 100):
        results.add(number, small(number) if number % 2 else large(number))
    drops = results.take_drops()
    assert drops is not None and drops.first_frame == 9
    producer.recover()
    delivered = [frame_of(data) for data in producer.acknowledged]
    assert delivered == list(range(9)) + list(range(drops.last_frame + 1, 100)), "one run of frames dropped"
    assert len(delivered) + results.dropped == 100


def test_file_is_never_dropped_and_pauses_at_the_budget_until_below_the_resume_share() -> None:
    results, producer, drops = make(100, live=False)
    paused_at = None
    for number in range(200):  # the runner goes on adding the frames in flight past the pause signal
        results.add(number, value(number))
        if paused_at is None and not results.has_room():
            paused_at = number
    assert paused_at == 99, "paused when the budget is full"
    assert (results.dropped, drops, results.undelivered) == (0, [], 200)

    resume_below = int(results.budget_bytes * RESUME_SHARE) // COUNTED  # 75 results
    producer.ack()  # the producer's 25 acknowledged; 175 left
    results.pump()
    while results.undelivered > resume_below:
        assert not results.has_room(), f"resumed at {results.undelivered} undelivered"
        producer.ack(1)
        results.pump()
    assert results.has_room()
    producer.recover()
    assert [frame_of(data) for data in producer.acknowledged] == list(range(200))


def test_live_never_pauses() -> None:
    results, _, _ = make(10, live=True)
    for number in range(100):
        results.add(number, value(number))
        assert results.has_room()


def test_a_full_local_queue_keeps_results_held_in_order() -> None:
    results, producer, _ = make(1000, live=True)
    producer.available = False  # librdkafka's own limit reached before its share
    for number in range(10):
        results.add(number, value(number))
    assert results.held == 10 and not producer.queued
    producer.available = True
    results.add(10, value(10))  # behind the held ones, never before them
    assert results.held == 11
    producer.recover()
    assert [frame_of(data) for data in producer.acknowledged] == list(range(11))


def test_the_producer_share_is_bounded_by_count_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(undelivered, "PRODUCER_MAX_RESULTS", 7)
    results, producer, _ = make(1000, live=True)
    for number in range(20):
        results.add(number, value(number))
    assert len(producer.queued) == 7 and results.held == 13


def test_a_result_larger_than_the_budget_is_still_delivered() -> None:
    results, producer, _ = make(1, live=True)

    def big(number: int) -> bytes:
        return value(number) * 10

    results.add(0, big(0))  # the empty producer takes it, whatever its share
    results.add(1, big(1))  # held: the newest is never dropped, even over the budget
    results.add(2, big(2))  # drops 1
    assert (len(producer.queued), results.held, results.dropped) == (1, 1, 1)
    producer.recover()
    assert [frame_of(data) for data in producer.acknowledged] == [0, 2]


def test_every_result_is_acknowledged_dropped_lost_or_undelivered_once() -> None:
    results, producer, _ = make(50, live=True)
    for number in range(300):
        results.add(number, value(number))
        if number % 100 == 0:
            producer.ack(3)
            results.pump()
    assert results.added == results.acknowledged + results.dropped + results.lost + results.undelivered
    held = results.held
    assert results.abandon() == held  # exit: what is held is lost; the producer's are purged (lost via their reports)
    for data in list(producer.queued):
        producer.queued.remove(data)
        results.delivered(len(data), ok=False)
    assert results.undelivered == 0 and results.undelivered_bytes == 0
    assert results.added == results.acknowledged + results.dropped + results.lost == 300
