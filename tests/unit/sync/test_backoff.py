"""``supervision.Backoff``: exponential backoff with full jitter."""

from __future__ import annotations

import random

from otwatch.sync.supervision import Backoff


class Ceiling(random.Random):
    """Draws the top of the window, so that the window itself can be read off."""

    def uniform(self, a: float, b: float) -> float:
        assert a == 0.0
        return b


def test_window_doubles_from_base_up_to_cap():
    backoff = Backoff(base_s=0.5, cap_s=10.0, rng=Ceiling())
    assert [backoff.next() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_reset_starts_again_at_base():
    backoff = Backoff(base_s=0.5, cap_s=10.0, rng=Ceiling())
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert backoff.next() == 0.5


def test_delays_spread_over_the_whole_window():
    """Full jitter: draws fall anywhere in [0, ceiling], the low quarter included."""
    draws = []
    for seed in range(400):
        backoff = Backoff(base_s=1.0, cap_s=8.0, rng=random.Random(seed))
        backoff.attempt = 3  # ceiling 8
        draws.append(backoff.next())
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert min(draws) < 0.5 and max(draws) > 7.5
    assert sum(d < 2.0 for d in draws) > 60  # about a quarter of 400


def test_many_failures_do_not_overflow():
    backoff = Backoff(base_s=0.5, cap_s=10.0, rng=Ceiling())
    for _ in range(10_000):
        assert backoff.next() <= 10.0
