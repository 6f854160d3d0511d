"""Durations, timestamps and their text forms (ISO 8601 UTC everywhere)."""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime
from typing import overload

from otwatch.errors import OtwatchError

__all__ = [
    "MAX_NS",
    "DurationError",
    "format_iso",
    "now_ns",
    "parse_duration_ns",
    "parse_time_ns",
]

NS_PER_S = 1_000_000_000
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
MAX_NS = (1 << 63) - 1
"""The largest time or duration in ns a store column holds (signed 64-bit; 2262-04-11)."""
_DURATION = re.compile(r"\d+(?:\.\d+)?|(?:\d+(?:\.\d+)?[smhdw])+")
_RANGE = "from 1970-01-01 to 2262-04-11"


class DurationError(OtwatchError):
    """A duration or time given on the command line or in config could not be read."""


def now_ns() -> int:
    return time.time_ns()


def parse_duration_ns(text: str) -> int:
    """Parse ``90s``, ``10m``, ``1h30m``, ``14d``, ``2w`` (a bare number means seconds)."""
    raw = text.strip().lower()
    if not raw:
        raise DurationError("empty duration; use e.g. 30s, 10m, 2h, 14d or 2w")
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        return _bounded_duration(text, float(raw) * NS_PER_S)
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(raw):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS_S[match.group(2)]
        pos = match.end()
    if pos != len(raw) or pos == 0:
        raise DurationError(
            f"invalid duration {text!r}; use a number and a unit s, m, h, d, w (e.g. 30s, 2h, 14d)"
        )
    return _bounded_duration(text, total * NS_PER_S)


def _bounded_duration(text: str, ns: float) -> int:
    if not ns < MAX_NS:  # also inf (a 400-digit number) and nan
        raise DurationError(f"duration {_shown(text)} is too long (at most 292 years)")
    return int(ns)


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for an error line, cut short when it is long."""
    text = text.strip()
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def parse_time_ns(text: str) -> int:
    """Parse an ISO 8601 time (naive means UTC) or a duration ago (``2h`` = two hours ago).

    Times outside what a store column holds (before 1970, after 2262-04-11) are refused."""
    raw = text.strip()
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        if not _DURATION.fullmatch(raw.lower()):
            raise DurationError(
                f"invalid time {text!r}; use ISO 8601 (2026-11-27T10:00:00Z) or an age like 2h"
            ) from None
        ns = now_ns() - parse_duration_ns(raw)
    else:
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ns = int(parsed.timestamp()) * NS_PER_S + parsed.microsecond * 1000
    if not 0 <= ns <= MAX_NS:
        raise DurationError(f"time {_shown(text)} is out of range; use a time {_RANGE}")
    return ns


@overload
def format_iso(ts_ns: int) -> str: ...
@overload
def format_iso(ts_ns: int | None) -> str | None: ...
def format_iso(ts_ns: int | None) -> str | None:
    """ISO 8601 UTC with microseconds and a ``Z`` suffix, or None."""
    if ts_ns is None:
        return None
    seconds, rem = divmod(ts_ns, NS_PER_S)
    return f"{_iso_seconds(seconds)}.{rem // 1000:06d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    """The date and time part (alert forwarding formats three per alert: a sixth of its
    cost with ``strftime`` each time). ``isoformat`` always writes a 4-digit year (glibc's
    ``%Y`` writes year 1 as ``1``)."""
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def age_s(ts_ns: int | None, now: int) -> float | None:
    """Seconds from ``ts_ns`` to ``now`` (never negative); None when ``ts_ns`` is unset."""
    return None if not ts_ns else max(0.0, (now - ts_ns) / NS_PER_S)
