"""Reconnect delays: exponential, capped, with jitter."""

from __future__ import annotations

import random


class Backoff:
    """Delay before reconnect attempt ``n`` (1-based): ``min(max, initial * 2**(n-1))`` less up to
    ``jitter_ratio`` of it at random, so many runners of one camera server spread their retries."""

    def __init__(
        self, *, initial_seconds: float, max_seconds: float, jitter_ratio: float = 0.5, rng: random.Random | None = None
    ) -> None:
        self._initial_seconds = initial_seconds
        self._max_seconds = max_seconds
        self._jitter_ratio = jitter_ratio
        self._rng = rng or random.Random()

    def delay_seconds(self, attempt: int) -> float:
        ceiling = min(self._max_seconds, self._initial_seconds * 2.0 ** min(max(attempt, 1) - 1, 62))
        return ceiling * (1.0 - self._jitter_ratio * self._rng.random())
