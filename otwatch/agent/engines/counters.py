"""Bounded per-key counters in tumbling time windows, shared by the rate-based detectors.

Every table here has a hard ``max_keys``: when full, the entry whose window started longest
ago is evicted (windows restart by re-insertion, so dict order is window-start order and
eviction is O(1)). A scan of a million distinct sources therefore costs at most ``max_keys``
entries, each with at most ``threshold`` remembered items.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["DistinctCounter", "RateCounter", "remember"]


class RateCounter:
    """Counts events per key; ``hit`` returns the count when it reaches ``threshold``.

    A window starts at a key's first event and lasts ``window_ns``; each window reports at
    most once, so a sustained flood yields one detection per window.
    """

    __slots__ = ("_keys", "evicted", "max_keys", "threshold", "window_ns")

    def __init__(self, threshold: int, window_ns: int, max_keys: int) -> None:
        self.threshold, self.window_ns, self.max_keys = threshold, window_ns, max_keys
        self._keys: dict[Hashable, list[int]] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._keys)

    def hit(self, key: Hashable, ts_ns: int) -> int:
        keys = self._keys
        entry = keys.get(key)
        if entry is None or ts_ns - entry[0] >= self.window_ns:
            if entry is not None:
                del keys[key]
            elif len(keys) >= self.max_keys:
                del keys[next(iter(keys))]
                self.evicted += 1
            keys[key] = entry = [ts_ns, 0]
        entry[1] += 1
        return entry[1] if entry[1] == self.threshold else 0

    def count(self, key: Hashable) -> int:
        entry = self._keys.get(key)
        return 0 if entry is None else entry[1]

    def expire(self, now_ns: int) -> None:
        """Drop windows that ended before ``now_ns`` (tidying; bounds hold without it)."""
        window = self.window_ns
        for key in [k for k, e in self._keys.items() if now_ns - e[0] >= window]:
            del self._keys[key]


class DistinctCounter:
    """Distinct items per key; ``add`` returns the count when it reaches ``threshold``.

    Items stop being stored once a window has reported, so a key holds at most
    ``threshold`` items.
    """

    __slots__ = ("_keys", "evicted", "max_keys", "threshold", "window_ns")

    def __init__(self, threshold: int, window_ns: int, max_keys: int) -> None:
        self.threshold, self.window_ns, self.max_keys = threshold, window_ns, max_keys
        self._keys: dict[Hashable, tuple[int, set]] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Hashable, item: Hashable, ts_ns: int) -> int:
        keys = self._keys
        entry = keys.get(key)
        if entry is None or ts_ns - entry[0] >= self.window_ns:
            if entry is not None:
                del keys[key]
            elif len(keys) >= self.max_keys:
                del keys[next(iter(keys))]
                self.evicted += 1
            keys[key] = entry = (ts_ns, set())
        items = entry[1]
        if item in items or len(items) >= self.threshold:
            return 0
        items.add(item)
        return len(items) if len(items) == self.threshold else 0

    def items(self, key: Hashable) -> set:
        entry = self._keys.get(key)
        return set() if entry is None else set(entry[1])

    def expire(self, now_ns: int) -> None:
        window = self.window_ns
        for key in [k for k, e in self._keys.items() if now_ns - e[0] >= window]:
            del self._keys[key]


def remember(table: dict, key: Hashable, value: object, max_keys: int) -> None:
    """Insert into a bounded dict, evicting the oldest insertion when full."""
    if key not in table and len(table) >= max_keys:
        del table[next(iter(table))]
    table[key] = value
