"""The alert filter of list, group and export requests, from query parameters (repeat a
parameter or comma-separate values)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from otwatch.alerts.catalog import Engine, Severity
from otwatch.alerts.views import AlertFilter, QueryError
from otwatch.timeutil import parse_time_ns

__all__ = ["STATUSES", "Filter", "alert_filter", "split_values", "time_ns"]

STATUSES = ("new", "active", "closed")


def split_values(
    values: list[str] | None, allowed: tuple[str, ...] | None = None, name: str = ""
) -> tuple[str, ...]:
    """A repeated or comma-separated query parameter's values; with ``allowed``, lower-cased
    and checked (``QueryError`` names the bad ones and the choices)."""
    out = tuple(v.strip() for value in values or () for v in value.split(",") if v.strip())
    if allowed is not None:
        out = tuple(v.lower() for v in out)
        bad = [v for v in out if v not in allowed]
        if bad:
            raise QueryError(f"invalid {name} {', '.join(bad)}: choose from {', '.join(allowed)}")
    return out


def time_ns(value: str | None) -> int | None:
    """An ISO 8601 time or an age (``24h``) in ns; a bad one raises ``DurationError``."""
    return None if value is None else parse_time_ns(value)


def alert_filter(
    status_: Annotated[
        list[str] | None, Query(alias="status", description="new, active, closed")
    ] = None,
    severity: Annotated[list[str] | None, Query(description="low, medium, high")] = None,
    engine: Annotated[list[str] | None, Query(description="Engine (policy_violation, ...)")] = None,
    category: Annotated[list[str] | None, Query()] = None,
    sensor: Annotated[list[str] | None, Query()] = None,
    site: Annotated[list[str] | None, Query()] = None,
    zone: Annotated[list[str] | None, Query()] = None,
    protocol: Annotated[list[str] | None, Query()] = None,
    type_: Annotated[list[str] | None, Query(alias="type", description="Alert type id")] = None,
    source: Annotated[str | None, Query(max_length=64, description="Source IP or MAC")] = None,
    destination: Annotated[
        str | None, Query(max_length=64, description="Destination IP or MAC")
    ] = None,
    search: Annotated[
        str | None, Query(max_length=200, description="Text in name, message, ...")
    ] = None,
    since: Annotated[
        str | None, Query(description="Last detection at or after (ISO 8601 or 24h)")
    ] = None,
    until: Annotated[str | None, Query(description="First detection at or before")] = None,
    learnable: Annotated[bool | None, Query(description="Learnable types only (or not)")] = None,
) -> AlertFilter:
    return AlertFilter(
        statuses=split_values(status_, STATUSES, "status"),
        severities=split_values(severity, tuple(s.value for s in Severity), "severity"),
        engines=split_values(engine, tuple(e.value for e in Engine), "engine"),
        categories=split_values(category),
        sensors=split_values(sensor),
        sites=split_values(site),
        zones=split_values(zone),
        protocols=tuple(p.lower() for p in split_values(protocol)),
        types=tuple(t.lower() for t in split_values(type_)),
        source=source or None,
        destination=destination or None,
        search=search or None,
        since_ns=time_ns(since),
        until_ns=time_ns(until),
        learnable=learnable,
    )


Filter = Annotated[AlertFilter, Depends(alert_filter)]
