"""Central's periodic jobs: cross-sensor unification, auto-close and retention.

- **Unification** (spec section 2, de-duplication 3): an alert from another sensor in the
  same site and zone, of the same type, status, alert protocol and devices (source and
  destination), first detected within 10 minutes of an earlier one, is shown as part of that
  earlier alert, which then lists every sensor. The earlier alert is the one with the lowest
  central id, so two instances cannot build a cycle; the job also runs under a database lock
  (PostgreSQL advisory lock) so only one instance unifies at a time.
- **Auto-close**: a New alert whose last detection is older than the auto-close period
  (spec: 90 days without identical traffic) is closed centrally with close reason ``auto``,
  audited as ``system:auto-close``. Its sensor runs the same rule itself.
- **Retention**: alerts whose first detection is older than the retention (spec: 90 days,
  whatever the status) are deleted with their unification rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, delete, func, select, text
from sqlalchemy.orm import Session

from otwatch.central.store import alerts as alert_store
from otwatch.central.store import sensors as sensor_store
from otwatch.central.store.models import Alert, Sensor
from otwatch.central.store.models_api import AlertMember

__all__ = [
    "DAY_NS",
    "UNIFY_WINDOW_NS",
    "MaintenanceSettings",
    "auto_close",
    "delete_expired",
    "unify",
]

DAY_NS = 86_400 * 1_000_000_000
UNIFY_WINDOW_NS = 10 * 60 * 1_000_000_000
_UNIFY_HW = "unify_hw"
_UNIFY_SLACK = 500
"""Ids below the high-water mark looked at again: PostgreSQL may commit ids out of order."""
_UNIFY_BATCH = 5_000
_DELETE_BATCH = 5_000
_LOCK_UNIFY = 0x6F74_7761_7463_6801  # "otwatch" + 1
AUTO_CLOSE_ACTOR = "system:auto-close"


@dataclass(frozen=True, slots=True)
class MaintenanceSettings:
    auto_close_ns: int | None = 90 * DAY_NS
    """New alerts without identical traffic for this long are closed (None: never)."""
    retention_ns: int | None = 90 * DAY_NS
    """Alerts first detected longer ago than this are deleted (None: kept)."""


def _try_lock(session: Session, key: int) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}))


def _same(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def unify(session: Session, now: int, window_ns: int = UNIFY_WINDOW_NS) -> int:
    """Unify alerts that arrived since the last run; returns how many became members."""
    if not _try_lock(session, _LOCK_UNIFY):
        return 0
    hw = int(sensor_store.get_state(session, _UNIFY_HW, 0))
    top = session.scalar(select(func.max(Alert.id))) or 0
    if top <= hw:
        return 0
    members = select(AlertMember.alert_pk)
    rows = session.execute(
        select(
            Alert.id,
            Alert.sensor,
            Alert.type_id,
            Alert.site,
            Alert.zone,
            Alert.status,
            Alert.protocol,
            Alert.source_address,
            Alert.destination_address,
            Alert.first_detection_ns,
        )
        .where(Alert.id > max(0, hw - _UNIFY_SLACK), Alert.id.not_in(members))
        .order_by(Alert.id)
        .limit(_UNIFY_BATCH)
    ).all()
    # unification is across sensors: a zone (and site) that only one sensor reports from
    # has nothing to unify, so its alerts cost no query (one sensor's alerts of the same
    # traffic are one alert already, de-duplicated on the sensor)
    shared = {
        (site, zone)
        for site, zone, count in session.execute(
            select(Sensor.site, Sensor.zone, func.count()).group_by(Sensor.site, Sensor.zone)
        )
        if count > 1
    }
    joined = 0
    for row in rows:
        if (row.site, row.zone) not in shared:
            continue
        primary = session.scalar(
            select(func.min(Alert.id)).where(
                Alert.type_id == row.type_id,
                Alert.zone == row.zone,
                _same(Alert.source_address, row.source_address),
                _same(Alert.destination_address, row.destination_address),
                Alert.first_detection_ns.between(
                    row.first_detection_ns - window_ns, row.first_detection_ns + window_ns
                ),
                Alert.site == row.site,
                Alert.status == row.status,
                _same(Alert.protocol, row.protocol),
                Alert.sensor != row.sensor,
                Alert.id < row.id,
                Alert.id.not_in(members),
            )
        )
        if primary is None:
            continue
        session.add(AlertMember(alert_pk=row.id, primary_pk=primary, sensor=row.sensor,
                                unified_ns=now))  # fmt: skip
        session.execute(
            cast(Table, AlertMember.__table__)  # declarative __table__ is typed as a FromClause
            .update()
            .where(AlertMember.primary_pk == row.id)
            .values(primary_pk=primary)
        )
        session.flush()
        joined += 1
    last = rows[-1].id if len(rows) == _UNIFY_BATCH else top
    sensor_store.put_state(session, _UNIFY_HW, max(hw, last))
    return joined


def auto_close(session: Session, now: int, older_than_ns: int, hlc: Any) -> int:
    """Close New alerts not detected for ``older_than_ns``; ``hlc()`` stamps each change."""
    cutoff = now - older_than_ns
    alerts = list(
        session.scalars(
            select(Alert)
            .where(Alert.status == "new", Alert.last_detection_ns < cutoff)
            .order_by(Alert.id)
            .limit(_DELETE_BATCH)
        )
    )
    audit = []
    for alert in alerts:
        stamp = hlc()
        before = {"status": alert.status, "close_reason": alert.close_reason,
                  "severity": alert.severity}  # fmt: skip
        alert_store.apply_central_change(
            session, alert, {"status": "closed", "close_reason": "auto"}, stamp, now
        )
        audit.append(
            {
                "event_id": str(uuid.uuid4()),
                "sensor": alert.sensor,
                "alert_id": alert.alert_id,
                "ts_ns": now,
                "actor": AUTO_CLOSE_ACTOR,
                "origin": "central",
                "action": "status",
                "detail": {
                    "before": before,
                    "after": {**before, "status": "closed", "close_reason": "auto"},
                    "hlc": stamp,
                    "reason": f"no identical traffic for {older_than_ns // DAY_NS} days",
                },
            }
        )
    alert_store.add_audit(session, audit)
    return len(alerts)


def delete_expired(session: Session, now: int, retention_ns: int) -> int:
    """Delete alerts first detected before ``now - retention_ns`` (one batch per call)."""
    cutoff = now - retention_ns
    ids = list(
        session.scalars(
            select(Alert.id).where(Alert.first_detection_ns < cutoff).limit(_DELETE_BATCH)
        )
    )
    if not ids:
        return 0
    session.execute(delete(AlertMember).where(AlertMember.alert_pk.in_(ids)))
    session.execute(delete(AlertMember).where(AlertMember.primary_pk.in_(ids)))
    session.execute(
        delete(Alert).where(Alert.id.in_(ids)).execution_options(synchronize_session=False)
    )
    return len(ids)
