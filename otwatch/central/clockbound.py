"""Central's bound on the change clocks sensors send (``otwatch.hlc.peer_limit``).

A sensor's snapshot, change event or command acknowledgement carries hybrid logical clocks
that central stores and merges by. A stamp further ahead of central's wall clock than the
allowed skew is clamped to the limit before anything is stored or observed, so that one
forged stamp (2^63-1) can neither push central's clock out of the database's range nor make
one alert's fields unchangeable: central's next change is stamped after the clamped value
and wins. Each clamped message is logged once as a security event.
"""

from __future__ import annotations

from typing import Any

from otwatch.seclog import security_event

__all__ = ["clamp_batch", "clamp_fields", "report"]

_FIELDS = ("status_hlc", "severity_hlc")


def clamp_fields(values: dict[str, Any], limit: int) -> int:
    """Clamp ``status_hlc``/``severity_hlc`` of a row or an ack's alert state in place;
    returns how many were over ``limit``."""
    clamped = 0
    for name in _FIELDS:
        stamp = values.get(name)
        if isinstance(stamp, int) and stamp > limit:
            values[name] = limit
            clamped += 1
    return clamped


def clamp_batch(rows: list[dict[str, Any]], audit: list[dict[str, Any]], limit: int) -> int:
    """Clamp the alert rows and the audit rows' change clocks of one event batch in place;
    returns how many stamps were over ``limit``."""
    clamped = sum(clamp_fields(row, limit) for row in rows)
    for row in audit:
        detail = row.get("detail") or {}
        stamp = detail.get("hlc")
        if isinstance(stamp, int) and stamp > limit:
            row["detail"] = {**detail, "hlc": limit}
            clamped += 1
    return clamped


def report(sensor_id: str, clamped: int, where: str) -> None:
    security_event(
        "clock_ahead",
        "sensor %s sent %d change clock(s) in %s further ahead of central's clock than the "
        "allowed skew; clamped to the limit (check the sensor's clock, or its credentials)",
        sensor_id,
        clamped,
        where,
    )
