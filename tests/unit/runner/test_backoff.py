"""vap_runner.backoff: the runner's retry delays."""

from __future__ import annotations

import random

from vap_runner.backoff import Backoff


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter() -> None:
    backoff = Backoff(initial_seconds=1, max_seconds=30, jitter_ratio=0.5, rng=random.Random(7))
    delays = [backoff.delay_seconds(attempt) for attempt in range(1, 9)]
    ceilings = [1, 2, 4, 8, 16, 30, 30, 30]
    assert all(ceiling / 2 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True)), delays
    assert len(set(delays[5:])) == 3, "jitter spreads equal ceilings"
    assert backoff.delay_seconds(10_000) <= 30
