"""Hybrid logical clock: wall-clock milliseconds plus a counter, packed into one integer.

Used to order field changes made on different machines (sensor, central) for per-field
last-writer-wins. It never goes backwards, even when the wall clock does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["HybridClock", "hlc_physical_ms"]

_COUNTER_BITS = 16
_COUNTER_MASK = (1 << _COUNTER_BITS) - 1


def hlc_physical_ms(stamp: int) -> int:
    return stamp >> _COUNTER_BITS


class HybridClock:
    """``now()`` for local events, ``observe(remote)`` when a stamped change arrives."""

    def __init__(self, wall_ms: Callable[[], int] | None = None, last: int = 0) -> None:
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._last = last
        self._lock = threading.Lock()

    @property
    def last(self) -> int:
        return self._last

    def now(self) -> int:
        with self._lock:
            candidate = self._wall_ms() << _COUNTER_BITS
            self._last = candidate if candidate > self._last else self._last + 1
            return self._last

    def observe(self, remote: int) -> int:
        """Merge a remote stamp so that later local stamps order after it."""
        with self._lock:
            candidate = self._wall_ms() << _COUNTER_BITS
            self._last = max(candidate, self._last + 1, remote + 1)
            return self._last
