"""Per-type rate limit on new alerts: a storm folds into one "multiple violations" alert.

More than ``limit`` new distinct alerts of one type within ``window_ns`` of detection time,
and further new ones of that type are not raised one by one: the alert manager counts them into
one aggregate alert of the type (its own de-duplication key, :func:`aggregate_key`), whose
message says how many were folded and names some of their sources. Detections of alerts that
are already open are never limited (de-duplication makes them cheap).

Windows are fixed, per type, and measured in traffic time like the learning clock, so replay
and live capture agree. A detection older than its type's window start (the clock stepped
back) starts a new window rather than extending a limit into the future. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from otwatch.agent.engines.detection import Detection, dedup_key
from otwatch.timeutil import parse_duration_ns

if TYPE_CHECKING:
    from otwatch.config import DetectionSection

__all__ = ["DEFAULT_RATE_LIMIT", "Folded", "RateLimit", "RateLimiter", "aggregate_key"]

_AGGREGATE_FIELD = "rate_limited"
MAX_SOURCES = 20
"""Sources named on an aggregate alert (the count is exact, the list a sample)."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    limit: int = 100
    """New distinct alerts of one type per window before folding starts (0: no limit)."""
    window_ns: int = 60_000_000_000

    @property
    def window_s(self) -> float:
        return self.window_ns / 1e9

    @classmethod
    def from_section(cls, detection: DetectionSection) -> RateLimit:
        """The configuration file's ``detection.alert_rate_*``."""
        window = detection.alert_rate_window
        window_ns = parse_duration_ns(window) if window else DEFAULT_RATE_LIMIT.window_ns
        return cls(limit=detection.alert_rate_limit, window_ns=window_ns)


DEFAULT_RATE_LIMIT = RateLimit()


def aggregate_key(type_id: str) -> str:
    """The de-duplication key of a type's aggregate alert (one per type, like any key)."""
    return dedup_key(type_id, (_AGGREGATE_FIELD,), {_AGGREGATE_FIELD: "aggregate"})


@dataclass(slots=True)
class Folded:
    """Detections folded into one type's aggregate since the last flush."""

    count: int = 0
    sources: dict[str, None] = field(default_factory=dict)
    """Insertion-ordered set of the first ``MAX_SOURCES`` sources."""

    def add(self, det: Detection) -> None:
        self.count += 1
        if len(self.sources) < MAX_SOURCES:
            fields = det.fields
            source = fields.get("source_address") or fields.get("source_mac")
            if source is not None:
                self.sources[str(source)] = None


class RateLimiter:
    """Counts new distinct alerts per type in fixed windows of detection time."""

    def __init__(self, config: RateLimit = DEFAULT_RATE_LIMIT) -> None:
        self.config = config
        self._windows: dict[str, list[int]] = {}
        """type id → [window start ns, new alerts admitted in it]."""

    def admit(self, type_id: str, ts_ns: int) -> bool:
        """Whether a new distinct alert of ``type_id`` detected at ``ts_ns`` may be raised."""
        limit = self.config.limit
        if limit <= 0:
            return True
        window = self._windows.get(type_id)
        if window is None or not window[0] <= ts_ns < window[0] + self.config.window_ns:
            self._windows[type_id] = [ts_ns, 1]
            return True
        if window[1] < limit:
            window[1] += 1
            return True
        return False
