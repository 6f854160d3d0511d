"""The learned baseline in memory, and the learning-mode clock.

Facts are ``(kind, key)`` pairs, e.g. ``("device", "192.0.2.10")`` or
``("modbus_fc", "192.0.2.10>198.51.100.20:3")``. New facts are remembered as dirty until
the pipeline writes them to the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["Baseline", "LearningClock"]


class Baseline:
    def __init__(self, facts: Iterable[tuple[str, str]] = ()) -> None:
        self._facts: dict[str, set[str]] = {}
        for kind, key in facts:
            self._facts.setdefault(kind, set()).add(key)
        self.dirty: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.generation = 0
        """Changes with every fact learned or merged: what an engine caches from a check
        against the baseline is good while this stays the same."""

    def kind(self, kind: str) -> set[str]:
        """The live set of keys of one kind (engines keep a reference for speed)."""
        return self._facts.setdefault(kind, set())

    def add(self, kind: str, key: str, ts_ns: int, attrs: dict[str, Any] | None = None) -> bool:
        """Learn a fact; returns False when it was already known."""
        keys = self._facts.setdefault(kind, set())
        if key in keys:
            return False
        keys.add(key)
        self.dirty[(kind, key)] = (ts_ns, attrs or {})
        self.generation += 1
        return True

    def merge(self, kind: str, key: str) -> None:
        """A fact learned elsewhere (another worker, the store): known, not dirty."""
        self._facts.setdefault(kind, set()).add(key)
        self.generation += 1

    def take_dirty(self) -> dict[tuple[str, str], tuple[int, dict[str, Any]]]:
        dirty, self.dirty = self.dirty, {}
        return dirty

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._facts.values())


class LearningClock:
    """Learning mode lasts for an amount of *observed traffic time*, not wall time.

    Time advances with packet timestamps, and a gap between files or a clock jump backwards
    does not count, so replaying old captures and live capture behave the same.
    """

    __slots__ = ("_last_ns", "remaining_ns")

    def __init__(self, remaining_ns: int = 0) -> None:
        self.remaining_ns = max(0, remaining_ns)
        self._last_ns: int | None = None

    @property
    def active(self) -> bool:
        return self.remaining_ns > 0

    def advance(self, ts_ns: int) -> None:
        last = self._last_ns
        self._last_ns = ts_ns
        if last is not None and ts_ns > last:
            self.remaining_ns -= ts_ns - last
            if self.remaining_ns < 0:
                self.remaining_ns = 0

    def restart_segment(self) -> None:
        """Forget the previous timestamp (a new file or capture session starts)."""
        self._last_ns = None
