"""How alerts are filtered, grouped, sorted and shown: one place for the sensor and central.

Both stores map an ``alerts`` table with the same column names, so the query helpers take the
mapped class and work on either. Output keys and CSV columns are fixed here (the JSON keys of
the CLI and API are a contract).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Text, cast, func, or_, select

from otwatch.csvsafe import csv_cell
from otwatch.errors import OtwatchError
from otwatch.timeutil import format_iso

__all__ = [
    "ALERT_KEYS",
    "CSV_COLUMNS",
    "GROUP_BY",
    "SORT_KEYS",
    "AlertFilter",
    "QueryError",
    "alert_to_dict",
    "alerts_to_csv",
    "filtered",
    "group_counts",
    "sorted_query",
]

ALERT_KEYS = (
    "id", "type", "name", "engine", "category", "severity", "status", "close_reason",
    "source_address", "destination_address", "source_mac", "destination_mac", "protocol",
    "first_detection", "last_detection", "last_activity", "detections", "sensor", "site",
    "zone", "tactics", "learnable", "message",
)  # fmt: skip

GROUP_BY = (
    "engine", "name", "sensor", "severity", "site", "status", "zone", "category", "protocol",
    "type",
)  # fmt: skip
_COLUMN = {"type": "type_id"}
"""Keys whose column has another name."""

SORT_KEYS = {
    "last_detection": "last_detection_ns",
    "first_detection": "first_detection_ns",
    "last_activity": "last_activity_ns",
    "severity": "severity",
    "detections": "detections",
    "id": "id",
    "name": "name",
    "status": "status",
    "site": "site",
    "engine": "engine",
    "sensor": "sensor",
    "zone": "zone",
    "category": "category",
    "protocol": "protocol",
    "type": "type_id",
    "source_address": "source_address",
    "destination_address": "destination_address",
    "tactics": "tactics",
}
"""Every column of the portal's grid (source/destination device: their address)."""

CSV_COLUMNS = (
    "id", "name", "severity", "status", "engine", "category", "source_address",
    "destination_address", "protocol", "first_detection", "last_detection", "detections",
    "sensor", "site", "zone", "message", "close_reason", "pcap_available",
)  # fmt: skip

_SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
"""A source/destination filter that looks like a MAC matches the MAC column, anything else
the address column (one indexed column instead of an OR over two)."""


class QueryError(OtwatchError):
    """A filter, sort or grouping the store cannot apply."""


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """The portal's filters; an empty tuple or None means 'any'."""

    statuses: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    sensors: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    source: str | None = None
    destination: str | None = None
    search: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    learnable: bool | None = None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filtered(model: Any, flt: AlertFilter, stmt: Select[Any] | None = None) -> Select[Any]:
    """``stmt`` (default: select all of ``model``) narrowed by ``flt``; values are bound."""
    stmt = select(model) if stmt is None else stmt
    for values, column in (
        (flt.statuses, model.status),
        (flt.severities, model.severity),
        (flt.engines, model.engine),
        (flt.categories, model.category),
        (flt.sensors, model.sensor),
        (flt.sites, model.site),
        (flt.zones, model.zone),
        (flt.protocols, model.protocol),
        (flt.types, model.type_id),
    ):
        if values:
            stmt = stmt.where(column.in_(values))
    if flt.source:
        mac = _MAC.match(flt.source)
        column = model.source_mac if mac else model.source_address
        stmt = stmt.where(column == (flt.source.lower() if mac else flt.source))
    if flt.destination:
        mac = _MAC.match(flt.destination)
        column = model.destination_mac if mac else model.destination_address
        stmt = stmt.where(column == (flt.destination.lower() if mac else flt.destination))
    if flt.search:
        pattern = f"%{_like_escape(flt.search)}%"
        stmt = stmt.where(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (
                        model.name,
                        model.message,
                        model.source_address,
                        model.destination_address,
                        model.protocol,
                        model.category,
                    )
                )
            )
        )
    if flt.learnable is not None:
        stmt = stmt.where(model.learnable == flt.learnable)
    if flt.since_ns is not None:
        stmt = stmt.where(model.last_detection_ns >= flt.since_ns)
    if flt.until_ns is not None:
        stmt = stmt.where(model.first_detection_ns <= flt.until_ns)
    return stmt


def sorted_query(model: Any, stmt: Select[Any], sort: str = "-last_detection") -> Select[Any]:
    """Sort by a key of ``SORT_KEYS``; a leading ``-`` means descending (default: newest first)."""
    descending = sort.startswith("-")
    key = sort.lstrip("-+")
    if key not in SORT_KEYS:
        raise QueryError(f"cannot sort by {key!r}; choose one of {', '.join(SORT_KEYS)}")
    column = getattr(model, SORT_KEYS[key])
    if key == "severity":
        from sqlalchemy import case

        column = case(_SEVERITY_RANK, value=model.severity, else_=-1)
    elif key == "tactics":
        column = cast(column, Text)  # a JSON list: ordered by its text (indexed on central)
    order = column.desc() if descending else column.asc()
    return stmt.order_by(order, model.id.desc() if descending else model.id.asc())


def group_counts(
    session: Any, model: Any, flt: AlertFilter, by: str, *, where: Sequence[Any] = ()
) -> list[tuple[str, int]]:
    """Counts of the filtered alerts per value of ``by`` (the portal's Group by), largest first.
    ``where``: extra conditions of the caller's store (central hides unified members)."""
    if by not in GROUP_BY:
        raise QueryError(f"cannot group by {by!r}; choose one of {', '.join(GROUP_BY)}")
    column = getattr(model, _COLUMN.get(by, by))
    stmt = filtered(model, flt, select(column, func.count()).select_from(model).where(*where))
    stmt = stmt.group_by(column).order_by(func.count().desc(), column)
    return [(str(value), int(count)) for value, count in session.execute(stmt).all()]


def alert_to_dict(alert: Any, *, extra: Sequence[str] = ()) -> dict[str, Any]:
    """The alert in the CLI/API JSON form: fixed keys, lower-case enums, ISO 8601 UTC times."""
    out: dict[str, Any] = {
        "id": alert.id,
        "type": alert.type_id,
        "name": alert.name,
        "engine": alert.engine,
        "category": alert.category,
        "severity": alert.severity,
        "status": alert.status,
        "close_reason": alert.close_reason,
        "source_address": alert.source_address,
        "destination_address": alert.destination_address,
        "source_mac": alert.source_mac,
        "destination_mac": alert.destination_mac,
        "protocol": alert.protocol,
        "first_detection": format_iso(alert.first_detection_ns),
        "last_detection": format_iso(alert.last_detection_ns),
        "last_activity": format_iso(alert.last_activity_ns),
        "detections": alert.detections,
        "sensor": alert.sensor,
        "site": alert.site,
        "zone": alert.zone,
        "tactics": list(alert.tactics),
        "learnable": alert.learnable,
        "message": alert.message,
    }
    for name in extra:
        out[name] = getattr(alert, name)
    return out


def alerts_to_csv(rows: Iterable[dict[str, Any]], out: io.TextIOBase | Any) -> int:
    """Write the spec's export columns; returns the number of rows written."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({k: csv_cell(row.get(k), _csv_value) for k in CSV_COLUMNS})
        count += 1
    return count


def _csv_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)
