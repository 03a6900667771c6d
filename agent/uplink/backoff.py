"""Reconnect delays after gRPC's connection-backoff algorithm.

Defaults follow grpc/doc/connection-backoff.md: 1 s initial, x1.6 per failure,
±20 % jitter, capped at 120 s. A random first delay spreads a whole fleet that
starts (or reconnects) at the same instant over a window instead of a spike.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from agent.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Parameters of the backoff; all in seconds except ``multiplier`` and ``jitter``."""

    initial: float = 1.0
    multiplier: float = 1.6
    jitter: float = 0.2
    maximum: float = 120.0
    # upper bound of the random delay before the first attempt: 5,000 agents connecting at once
    # failed 39 % without a ramp and 0 % with a 90 s one (TESTBED.md)
    first_delay_max: float = 90.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ConfigError("backoff: need 0 < initial <= maximum")
        if self.multiplier < 1.0:
            raise ConfigError("backoff: multiplier must be >= 1")
        if not 0.0 <= self.jitter < 1.0:
            raise ConfigError("backoff: jitter must be in [0, 1)")
        if self.first_delay_max < 0:
            raise ConfigError("backoff: first_delay_max must be >= 0")


class Backoff:
    """Delay sequence for one connection: call :meth:`next_delay` after each failure,
    :meth:`reset` after a success."""

    def __init__(self, policy: BackoffPolicy | None = None, rng: random.Random | None = None) -> None:
        self.policy = policy or BackoffPolicy()
        self._rng = rng or random.Random()
        self._current = self.policy.initial
        self.failures = 0

    def first_delay(self) -> float:
        """Uniform in [0, first_delay_max]: the wait before the very first attempt."""
        return self._rng.uniform(0.0, self.policy.first_delay_max)

    def next_delay(self) -> float:
        """The wait before the next attempt, jittered; grows until the cap."""
        policy = self.policy
        base = self._current
        self._current = min(self._current * policy.multiplier, policy.maximum)
        self.failures += 1
        delay = base * (1.0 + self._rng.uniform(-policy.jitter, policy.jitter))
        # Jitter may push past the cap by up to +jitter; the spec applies the cap before
        # jitter, so a capped delay is maximum ± 20 %.
        return max(0.0, delay)

    def reset(self) -> None:
        self._current = self.policy.initial
        self.failures = 0
