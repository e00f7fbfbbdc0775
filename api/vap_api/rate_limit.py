"""Requests per API key and minute, counted in this API process (a moving window, `limits`)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from vap_api.errors import TooManyRequests

RATE_LIMITED = Counter("vap_api_rate_limited_total", "Requests refused (429) for their API key's rate limit")


class KeyRateLimit:
    """At most ``per_minute`` requests of one caller in any 60 seconds; 0: no limit. With N API
    replicas a caller may make up to N times as many (each counts its own)."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._item = RateLimitItemPerMinute(per_minute) if per_minute else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, caller: str) -> None:
        """Count a request of ``caller``, or TooManyRequests (with when to retry) past the limit."""
        if self._item is None or self._limiter.hit(self._item, caller):
            return
        RATE_LIMITED.inc()
        reset_at = self._limiter.get_window_stats(self._item, caller).reset_time
        raise TooManyRequests(
            f"more than {self._per_minute} requests a minute with this API key; retry later",
            retry_after_seconds=max(1, math.ceil(reset_at - time.time())),
        )
