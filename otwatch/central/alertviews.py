"""Central's alert views: ids, listing with unification, details, export rows.

Filtering, grouping, sorting and the JSON/CSV forms come from ``otwatch.alerts.views`` (one place
for the sensor and central). This module adds only what is central's own:

- **Ids.** An alert's central id is ``<sensor alert id>-<sensor id>`` (the spec's CM UUID
  form, ``1-1594550943000``): sensor alert ids are unique only per sensor. The sensor alert
  id is digits only, so the first ``-`` splits it unambiguously even when the sensor id
  contains dashes. A unified alert shows the id of its first sensor's alert.
- **Unification.** Members of a unified alert are hidden from lists and counts; their
  primary lists every sensor. A sensor filter matches a unified alert when any of its
  sensors matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from otwatch.alerts.views import (
    AlertFilter,
    QueryError,
    alert_to_dict,
    filtered,
    group_counts,
    sorted_query,
)
from otwatch.central import alertextras
from otwatch.central.deviceviews import add_device_refs
from otwatch.central.store.derived import COUNT_DIMENSIONS
from otwatch.central.store.models import Alert, AuditEvent, Sensor
from otwatch.central.store.models_api import AlertCount, AlertMember, PcapRequest
from otwatch.central.store.search import search_condition
from otwatch.timeutil import format_iso

__all__ = [
    "MAX_LIMIT",
    "TOTAL_CAP",
    "alert_details",
    "central_id",
    "count_alerts",
    "export_rows",
    "find_alert",
    "group_alerts",
    "list_alerts",
    "list_page",
    "members_of",
    "parse_central_id",
]

MAX_LIMIT = 1000
TOTAL_CAP = 10_000
"""Matches counted exactly for a filter ``alert_counts`` cannot answer (``count_alerts``)."""
_DENSE_SEARCH = 5000
"""A search matching more alerts than this lists fastest by scanning newest first."""
_COUNT_FILTERS = {
    "status": "statuses",
    "severity": "severities",
    "engine": "engines",
    "category": "categories",
    "sensor": "sensors",
    "site": "sites",
    "zone": "zones",
}
_NOT_COUNTED = (
    "protocols", "types", "source", "destination", "search", "since_ns", "until_ns",
    "learnable",
)  # fmt: skip
_CENTRAL_ID = re.compile(r"^(\d{1,18})-([A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")
_EXPORT_PAGE = 5000
_MAX_LITERAL_IDS = 500


def central_id(alert: Any) -> str:
    return f"{alert.alert_id}-{alert.sensor}"


def parse_central_id(text: str) -> tuple[int, str]:
    """``"42-plant-a"`` → ``(42, "plant-a")``; raises ``QueryError`` for anything else."""
    match = _CENTRAL_ID.match(str(text).strip())
    if match is None:
        raise QueryError(
            f"invalid central alert id {str(text)[:80]!r}: use <sensor alert id>-<sensor id>, "
            "e.g. 42-sensor1"
        )
    return int(match.group(1)), match.group(2)


def _has_members(session: Session) -> bool:
    return session.scalar(select(AlertMember.alert_pk).limit(1)) is not None


def _visible(session: Session, flt: AlertFilter) -> tuple[AlertFilter, list[Any]]:
    """The filter for ``otwatch.alerts.views`` and the extra conditions: members hidden,
    sensor filter matching any sensor of a unified alert. Without unified alerts (the common
    case on a fresh or single-sensor central) no extra condition slows the scan down."""
    if not _has_members(session):
        return flt, []
    where: list[Any] = [Alert.id.not_in(select(AlertMember.alert_pk))]
    if flt.sensors:
        primaries = list(
            session.scalars(
                select(AlertMember.primary_pk)
                .where(AlertMember.sensor.in_(flt.sensors))
                .distinct()
                .limit(_MAX_LITERAL_IDS + 1)
            )
        )
        if len(primaries) > _MAX_LITERAL_IDS:
            primaries_clause: Any = Alert.id.in_(
                select(AlertMember.primary_pk).where(AlertMember.sensor.in_(flt.sensors))
            )
        else:
            primaries_clause = Alert.id.in_(primaries)
        where.append(or_(Alert.sensor.in_(flt.sensors), primaries_clause) if primaries
                     else Alert.sensor.in_(flt.sensors))  # fmt: skip
        flt = replace(flt, sensors=())
    return flt, where


def _searched(
    session: Session, flt: AlertFilter, where: list[Any], *, dense_limit: int | None
) -> tuple[AlertFilter, list[Any]]:
    """The free-text search through its index (``store.search``) when that is the better
    plan; otherwise ``otwatch.alerts.views``'s ILIKE stays in the filter."""
    if not flt.search:
        return flt, where
    condition = search_condition(session, flt.search, dense_limit=dense_limit)
    if condition is None:
        return flt, where
    return replace(flt, search=None), [*where, condition]


Prepared = tuple[AlertFilter, list[Any]]
"""A filter with its store conditions worked out (``_prepare``), to use more than once."""


def _prepare(session: Session, flt: AlertFilter) -> Prepared:
    flt, where = _visible(session, flt)
    return _searched(session, flt, where, dense_limit=_DENSE_SEARCH)


def _selection(prepared: Prepared, columns: Any = Alert) -> Any:
    flt, where = prepared
    return filtered(Alert, flt, select(columns).where(*where))


def _query(session: Session, flt: AlertFilter, sort: str, prepared: Prepared | None = None) -> Any:
    stmt = _selection(prepared or _prepare(session, flt))
    if sort.lstrip("-+") != "severity":
        return sorted_query(Alert, stmt, sort)
    # the generated rank column has an index (otwatch.alerts.views' CASE expression has none)
    if sort.startswith("-"):
        return stmt.order_by(Alert.severity_rank.desc(), Alert.id.desc())
    return stmt.order_by(Alert.severity_rank.asc(), Alert.id.asc())


def _sensors_by_primary(session: Session, alerts: list[Alert]) -> dict[int, list[str]]:
    ids = [a.id for a in alerts]
    out: dict[int, list[str]] = {a.id: [a.sensor] for a in alerts}
    if not ids:
        return out
    rows = session.execute(
        select(AlertMember.primary_pk, AlertMember.sensor)
        .where(AlertMember.primary_pk.in_(ids))
        .order_by(AlertMember.alert_pk)
    ).all()
    for primary, sensor in rows:
        if sensor not in out[primary]:
            out[primary].append(sensor)
    return out


def _to_dicts(session: Session, alerts: list[Alert]) -> list[dict[str, Any]]:
    sensors = _sensors_by_primary(session, alerts)
    out = []
    for alert in alerts:
        row = alert_to_dict(alert)
        row["id"] = central_id(alert)
        row["sensors"] = sensors[alert.id]
        out.append(row)
    add_device_refs(session, out)
    return out


def list_alerts(
    session: Session, flt: AlertFilter, *, sort: str = "-last_detection", limit: int = 100,
    offset: int = 0, prepared: Prepared | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise QueryError("offset must be 0 or more")
    stmt = _query(session, flt, sort, prepared).limit(limit).offset(offset)
    return _to_dicts(session, list(session.scalars(stmt)))


def list_page(
    session: Session, flt: AlertFilter, *, sort: str = "-last_detection", limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int | None]:  # fmt: skip
    """A page of ``list_alerts`` and the ``count_alerts`` total, the filter's conditions
    (e.g. a search's matches found through its index) worked out once for both."""
    prepared = _prepare(session, flt)
    rows = list_alerts(session, flt, sort=sort, limit=limit, offset=offset, prepared=prepared)
    return rows, count_alerts(session, flt, prepared)


def _counted(session: Session, flt: AlertFilter, by: str) -> list[tuple[str, int]] | None:
    """Group counts from ``alert_counts`` when the filter uses only its columns (None
    otherwise): a few thousand rows to add up instead of every alert."""
    if by not in COUNT_DIMENSIONS or any(getattr(flt, name) for name in _NOT_COUNTED):
        return None
    column = getattr(AlertCount, by)
    total = func.sum(AlertCount.n)
    stmt = select(column, total)
    for name, values in _COUNT_FILTERS.items():
        if getattr(flt, values):
            stmt = stmt.where(getattr(AlertCount, name).in_(getattr(flt, values)))
    stmt = stmt.group_by(column).having(total > 0).order_by(total.desc(), column)
    return [(str(value), int(count)) for value, count in session.execute(stmt).all()]


def _group(
    session: Session, flt: AlertFilter, by: str, where: list[Any] | None = None
) -> list[tuple[str, int]]:
    if where is None:
        counted = _counted(session, flt, by)
        if counted is not None:
            return counted
        where = []
    flt, where = _searched(session, flt, where, dense_limit=None)
    return group_counts(session, Alert, flt, by, where=where)


def group_alerts(session: Session, flt: AlertFilter, by: str) -> list[tuple[str, int]]:
    """Counts per value; unified members are subtracted afterwards instead of being excluded
    row by row, so the count can come from ``alert_counts`` or one index scan."""
    if flt.sensors and _has_members(session):
        flt, where = _visible(session, flt)
        return _group(session, flt, by, where)
    counts = dict(_group(session, flt, by))
    if not _has_members(session):
        return list(counts.items())
    members = [Alert.id.in_(select(AlertMember.alert_pk))]
    for value, count in _group(session, flt, by, members):
        counts[value] -= count
    rows = [(value, count) for value, count in counts.items() if count > 0]
    return sorted(rows, key=lambda vc: (-vc[1], vc[0]))


def count_alerts(
    session: Session, flt: AlertFilter, prepared: Prepared | None = None
) -> int | None:
    """How many alerts the filter selects, or None when that is more than ``TOTAL_CAP``.

    With only the columns of ``alert_counts`` filtered (status, severity, engine, category,
    sensor, site, zone) the count is exact whatever its size: a sum over a few thousand
    rows. Otherwise (search, time range, protocol, type, learnable, addresses) the matches are
    counted with the list's own plan up to ``TOTAL_CAP``: cheap, exact below the cap."""
    if not any(getattr(flt, name) for name in _NOT_COUNTED):
        return sum(count for _status, count in group_alerts(session, flt, "status"))
    if _search_over_cap(session, flt):
        return None
    ids = _selection(prepared or _prepare(session, flt), Alert.id).limit(TOTAL_CAP + 1).subquery()
    found = int(session.scalar(select(func.count()).select_from(ids)) or 0)
    return found if found <= TOTAL_CAP else None


def _search_over_cap(session: Session, flt: AlertFilter) -> bool:
    """SQLite, a search and nothing else: its index says at once whether more than
    ``TOTAL_CAP`` alerts match (instead of scanning until that many are found)."""
    if not flt.search or replace(flt, search=None) != AlertFilter():
        return False
    if session.get_bind().dialect.name != "sqlite" or _has_members(session):
        return False
    if search_condition(session, flt.search) is None:  # not indexed (no query is run)
        return False
    return search_condition(session, flt.search, dense_limit=TOTAL_CAP) is None


def _pcap_cached(session: Session) -> set[tuple[str, int]]:
    rows = session.execute(
        select(PcapRequest.sensor, PcapRequest.alert_id).where(PcapRequest.state == "done")
    ).all()
    return {(s, a) for s, a in rows}


def export_rows(
    session: Session, flt: AlertFilter, sort: str = "-last_detection"
) -> Iterator[dict[str, Any]]:
    """Every filtered alert as an export row (``pcap_available``: cached centrally now)."""
    cached = _pcap_cached(session)
    offset = 0
    stmt = _query(session, flt, sort)
    while True:
        alerts = list(session.scalars(stmt.limit(_EXPORT_PAGE).offset(offset)))
        for row, alert in zip(_to_dicts(session, alerts), alerts, strict=True):
            row["pcap_available"] = (alert.sensor, alert.alert_id) in cached
            yield row
        if len(alerts) < _EXPORT_PAGE:
            return
        offset += _EXPORT_PAGE


def find_alert(session: Session, text: str) -> Alert | None:
    """The alert a central id names; a member's id finds its unified primary."""
    alert_id, sensor = parse_central_id(text)
    alert = session.scalar(select(Alert).where(Alert.sensor == sensor, Alert.alert_id == alert_id))
    if alert is None:
        return None
    primary = session.scalar(select(AlertMember.primary_pk).where(AlertMember.alert_pk == alert.id))
    return session.get(Alert, primary) if primary is not None else alert


def members_of(session: Session, alert: Alert) -> list[Alert]:
    """The alert and the alerts unified into it, first sensor first."""
    others = session.scalars(
        select(Alert)
        .join(AlertMember, AlertMember.alert_pk == Alert.id)
        .where(AlertMember.primary_pk == alert.id)
        .order_by(Alert.id)
    )
    return [alert, *others]


def _audit(session: Session, alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    keys = [(a.sensor, a.alert_id) for a in alerts]
    conditions = [
        (AuditEvent.sensor == sensor) & (AuditEvent.alert_id == alert_id)
        for sensor, alert_id in keys
    ]
    events = session.scalars(
        select(AuditEvent).where(or_(*conditions)).order_by(AuditEvent.ts_ns, AuditEvent.id)
    )
    return [
        {
            "time": format_iso(e.ts_ns),
            "actor": e.actor,
            "origin": e.origin,
            "action": e.action,
            "sensor": e.sensor,
            "detail": e.detail,
        }
        for e in events
    ]


def alert_details(session: Session, alert: Alert) -> dict[str, Any]:
    """The sensor's ``alerts show`` JSON plus the sensors that saw the alert and what the
    portal shows (``alertextras``): comments, tactics with ids, entities, learn refusal."""
    members = members_of(session, alert)
    [data] = _to_dicts(session, [alert])
    data["parameters"] = dict(alert.fields)
    data["remediation"] = list(alert.remediation)
    data["audit"] = _audit(session, members)
    data["comments"] = alertextras.comments(session, members)
    data["tactics"] = alertextras.tactics(alert.tactics)
    data["entities"] = alertextras.entities(session, alert)
    data["learn_refusal"] = alertextras.learn_refusal(alert)
    online = dict(
        session.execute(
            select(Sensor.id, Sensor.online).where(Sensor.id.in_({m.sensor for m in members}))
        ).all()
    )
    data["seen_by"] = [
        {
            "sensor": m.sensor,
            "alert_id": m.alert_id,
            "id": central_id(m),
            "site": m.site,
            "zone": m.zone,
            "status": m.status,
            "first_detection": format_iso(m.first_detection_ns),
            "last_detection": format_iso(m.last_detection_ns),
            "detections": m.detections,
            "sensor_online": bool(online.get(m.sensor, False)),
        }
        for m in members
    ]
    cached = _pcap_cached(session)
    data["pcap_available"] = (alert.sensor, alert.alert_id) in cached
    return data
