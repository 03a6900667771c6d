from __future__ import annotations

import random

import pytest

from agent.errors import ConfigError
from agent.uplink.backoff import Backoff, BackoffPolicy


def test_grpc_defaults() -> None:
    policy = BackoffPolicy()
    assert (policy.initial, policy.multiplier, policy.jitter, policy.maximum) == (1.0, 1.6, 0.2, 120.0)


def test_delays_grow_by_multiplier_within_jitter_and_cap() -> None:
    backoff = Backoff(BackoffPolicy(), random.Random(7))
    base = 1.0
    for _ in range(30):
        delay = backoff.next_delay()
        assert base * 0.8 <= delay <= base * 1.2
        base = min(base * 1.6, 120.0)
    # capped: 120 s ± 20 %
    assert 96.0 <= backoff.next_delay() <= 144.0


def test_jitter_spreads_delays() -> None:
    delays = {round(Backoff(BackoffPolicy(), random.Random(seed)).next_delay(), 6) for seed in range(50)}
    assert len(delays) > 40
    assert min(delays) < 0.9
    assert max(delays) > 1.1


def test_reset_starts_over() -> None:
    backoff = Backoff(BackoffPolicy(jitter=0.0))
    assert [backoff.next_delay() for _ in range(3)] == pytest.approx([1.0, 1.6, 2.56])
    assert backoff.failures == 3
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() == pytest.approx(1.0)


def test_first_delay_is_random_within_window() -> None:
    rng = random.Random(1)
    backoff = Backoff(BackoffPolicy(first_delay_max=90.0), rng)
    firsts = [backoff.first_delay() for _ in range(200)]
    assert all(0.0 <= d <= 90.0 for d in firsts)
    assert max(firsts) - min(firsts) > 60.0


@pytest.mark.parametrize("kwargs", [{"initial": 0}, {"multiplier": 0.5}, {"jitter": 1.0},
                                    {"maximum": 0.5}, {"first_delay_max": -1}])
def test_bad_policy_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        BackoffPolicy(**kwargs)
