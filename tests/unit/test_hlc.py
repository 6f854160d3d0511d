"""The hybrid logical clock stays inside the 64-bit column range and bounds peers' stamps."""

from __future__ import annotations

from otwatch.hlc import MAX_HLC, HybridClock, hlc_physical_ms, peer_limit

WALL_MS = 1_790_000_000_000


def test_peer_limit_is_wall_plus_skew_and_never_past_the_column_range():
    limit = peer_limit(WALL_MS, 60_000)
    assert hlc_physical_ms(limit) == WALL_MS + 60_000
    assert peer_limit(WALL_MS, 60_000) < peer_limit(WALL_MS + 1, 60_000)
    assert peer_limit(1 << 62, 1 << 62) == MAX_HLC


def test_a_clock_saturates_at_the_column_range_instead_of_overflowing():
    clock = HybridClock(lambda: WALL_MS, last=MAX_HLC + 5)
    assert clock.last == MAX_HLC
    assert clock.observe(MAX_HLC) == MAX_HLC
    assert clock.now() == MAX_HLC


def test_observe_with_a_skew_bound_clamps_a_stamp_from_the_future():
    clock = HybridClock(lambda: WALL_MS, max_skew_ms=1000)
    stamp = clock.observe(MAX_HLC)
    assert hlc_physical_ms(stamp) == WALL_MS + 1001  # the limit, plus one tick after it
    unbounded = HybridClock(lambda: WALL_MS)
    near = (WALL_MS + 5000) << 16
    assert unbounded.observe(near) == near + 1
