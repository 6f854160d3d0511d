"""Hybrid logical clock: wall-clock milliseconds plus a counter, packed into one integer.

Used to order field changes made on different machines (sensor, central) for per-field
last-writer-wins. It never goes backwards, even when the wall clock does.

A peer's stamp is bounded before it is trusted (``peer_limit``): its physical part may be at
most ``max_skew`` ahead of the local wall clock, and no stamp ever exceeds ``MAX_HLC``, the
range of the 64-bit signed database columns that store it. Without the bound one forged
stamp of 2^63-1 would push every later local stamp out of that range (the stores refuse it)
or make every later change lose to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["DEFAULT_MAX_SKEW_MS", "MAX_HLC", "HybridClock", "hlc_physical_ms", "peer_limit"]

_COUNTER_BITS = 16
_COUNTER_MASK = (1 << _COUNTER_BITS) - 1
MAX_HLC = (1 << 63) - 1
"""The largest stamp a ``BIGINT`` column holds."""
DEFAULT_MAX_SKEW_MS = 24 * 3600 * 1000
"""How far ahead of the local wall clock a peer's clock may be (configurable per daemon:
``max_clock_skew``). A day: sensors in plants without NTP drift by minutes to hours, and the
bound is there against stamps from far in the future, not against drift."""


def hlc_physical_ms(stamp: int) -> int:
    return stamp >> _COUNTER_BITS


def peer_limit(wall_ms: int, max_skew_ms: int = DEFAULT_MAX_SKEW_MS) -> int:
    """The latest stamp a peer may send when the local wall clock reads ``wall_ms``."""
    return min(MAX_HLC, ((max(0, wall_ms) + max(0, max_skew_ms)) << _COUNTER_BITS) | _COUNTER_MASK)


class HybridClock:
    """``now()`` for local events, ``observe(remote)`` when a stamped change arrives.

    No stamp ever exceeds ``MAX_HLC`` (the clock then stays at it). With ``max_skew_ms``,
    ``observe`` also takes a remote stamp only up to ``peer_limit``; the sync daemons bound
    each inbound message's stamps that way before they reach a clock or a store."""

    def __init__(
        self,
        wall_ms: Callable[[], int] | None = None,
        last: int = 0,
        *,
        max_skew_ms: int | None = None,
    ) -> None:
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._last = min(max(0, last), MAX_HLC)
        self.max_skew_ms = max_skew_ms
        self._lock = threading.Lock()

    @property
    def last(self) -> int:
        return self._last

    def now(self) -> int:
        with self._lock:
            candidate = self._wall_ms() << _COUNTER_BITS
            self._last = min(MAX_HLC, candidate if candidate > self._last else self._last + 1)
            return self._last

    def observe(self, remote: int) -> int:
        """Merge a remote stamp so that later local stamps order after it."""
        with self._lock:
            wall = self._wall_ms()
            if self.max_skew_ms is not None:
                remote = min(remote, peer_limit(wall, self.max_skew_ms))
            candidate = wall << _COUNTER_BITS
            self._last = min(MAX_HLC, max(candidate, self._last + 1, remote + 1))
            return self._last
