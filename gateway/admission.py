"""Admission control: a token bucket in front of the reporting RPCs.

When every agent of a country reconnects after an outage, the gateway answers the
excess with RESOURCE_EXHAUSTED and a retry hint instead of queueing until it
falls over; agents wait at least the hint (plus their own jittered backoff).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from agent.errors import ConfigError


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``."""

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigError("admission: rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()
        self._rng = rng or random.Random()

    def try_take(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens: returns 0.0 when admitted, else a retry hint in seconds.

        The hint spreads retries over a window proportional to the deficit so the
        shed callers do not all come back in the same instant.
        """
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= cost:
            self._tokens -= cost
            return 0.0
        deficit = cost - self._tokens
        base = deficit / self.rate
        return base + self._rng.uniform(0.0, max(1.0, self.burst / self.rate))
