"""Reading what to forward: committed alert changes after a target's cursor (no hot path).

Sensor: the audit log (append-only) holds a ``created`` row per new alert and a row per
status/severity change, in commit order (SQLite has one writer at a time). Central: new
alerts are ``alerts`` rows with an id above the cursor (ingest writes no audit row for
them); changes are central's audit rows. Central's new alerts of a batch go before its
changes, and a change of an alert not yet forwarded waits for it, so order holds per alert.

On PostgreSQL, ids come from sequences and a transaction may commit a lower id after a
higher one: rows past a gap are held back until the gap is ``GAP_WAIT_NS`` old (then it is
taken as an id that was never used: rolled back, or spent by an upsert that updated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from otwatch.alerts.views import alert_to_dict
from otwatch.forwarding.backend import Backend
from otwatch.forwarding.events import ForwardEvent, event_uuid
from otwatch.forwarding.rules import RuleFilter, matches

__all__ = [
    "GAP_WAIT_NS",
    "UPDATE_ACTIONS",
    "Cursor",
    "GapGuard",
    "ReadResult",
    "RuleView",
    "head",
    "read_events",
    "update_kind",
]

UPDATE_ACTIONS = ("status", "severity", "learn", "unlearn", "mute", "unmute")
GAP_WAIT_NS = 5_000_000_000

Cursor = tuple[int, int]
"""(last audit row id, last alert id) examined."""


@dataclass(frozen=True)
class RuleView:
    """What reading needs of a rule."""

    filters: RuleFilter
    updates: bool
    start_alert_id: int


@dataclass
class GapGuard:
    """Holds back rows past an id gap on PostgreSQL until the gap has aged (see module)."""

    enabled: bool = False
    wait_ns: int = GAP_WAIT_NS
    seen: dict[tuple[str, int], int] = field(default_factory=dict)

    def usable(self, feed: str, cursor: int, ids: list[int], now: int) -> int:
        """How many of ``ids`` (ascending, all above ``cursor``) may be used now."""
        if not self.enabled:
            return len(ids)
        expected = cursor + 1
        for index, row_id in enumerate(ids):
            for missing in range(expected, min(row_id, expected + 1000)):
                first = self.seen.setdefault((feed, missing), now)
                if now - first < self.wait_ns:
                    return index
            expected = row_id + 1
        if len(self.seen) > 100_000:
            self.seen = {k: v for k, v in self.seen.items() if now - v < self.wait_ns}
        return len(ids)


@dataclass
class ReadResult:
    events: list[ForwardEvent]
    cursor: Cursor
    """Where reading stopped: every row up to here was examined."""
    rows: int


def update_kind(detail: dict[str, Any]) -> str | None:
    """``closed``, ``status`` or ``severity`` for a change row; None when nothing visible
    changed (a comment, a refused no-op)."""
    before, after = detail.get("before") or {}, detail.get("after") or {}
    if not after:
        return None
    if after.get("status") == "closed" and before.get("status") != "closed":
        return "closed"
    if after.get("severity") != before.get("severity"):
        return "severity"
    if (after.get("status"), after.get("close_reason")) != (
        before.get("status"),
        before.get("close_reason"),
    ):
        return "status"
    return None


def _alert_dict(backend: Backend, alert: Any) -> dict[str, Any]:
    out = alert_to_dict(alert)
    if backend.central:
        out["id"] = f"{alert.alert_id}-{alert.sensor}"
    out["remediation"] = list(alert.remediation or [])
    out["fields"] = dict(alert.fields or {})
    return out


def _change(audit: Any, kind: str) -> dict[str, Any]:
    detail = audit.detail or {}
    return {
        "action": audit.action,
        "kind": kind,
        "actor": audit.actor,
        "origin": audit.origin,
        "before": detail.get("before"),
        "after": detail.get("after"),
    }


def head(session: Session, backend: Backend) -> Cursor:
    """The newest audit row id and alert id now."""
    audit = session.scalar(select(func.max(backend.audit.id))) or 0
    alert = session.scalar(select(func.max(backend.alert.id))) or 0
    return int(audit), int(alert)


def read_events(
    session: Session,
    backend: Backend,
    rule: RuleView,
    cursor: Cursor,
    instance: str,
    limit: int,
    guard: GapGuard,
    now: int,
) -> ReadResult:
    """The rule's events after ``cursor`` (at most ``limit`` rows examined per feed)."""
    if backend.central:
        return _read_central(session, backend, rule, cursor, instance, limit, guard, now)
    return _read_sensor(session, backend, rule, cursor, instance, limit)


def _wanted(rule: RuleView, alert: Any, alert_dict: dict[str, Any]) -> bool:
    return alert.id > rule.start_alert_id and matches(rule.filters, alert_dict)


def _alert_columns(b: Backend) -> list[Any]:
    return [c for c in b.alert.__table__.c if c.key != "severity_rank"]


def _read_sensor(
    session: Session, b: Backend, rule: RuleView, cursor: Cursor, instance: str, limit: int
) -> ReadResult:
    actions = ("created", *UPDATE_ACTIONS) if rule.updates else ("created",)
    audit = b.audit.__table__.c
    # Core rows, not ORM objects (a third of the cost); ``alert_to_dict`` reads attributes.
    rows = session.execute(
        select(
            audit.id.label("audit_id"),
            audit.action,
            audit.actor,
            audit.origin,
            audit.detail,
            audit.ts_ns.label("audit_ts_ns"),
            *_alert_columns(b),
        )
        .select_from(b.audit.__table__.outerjoin(b.alert.__table__, b.alert.id == audit.alert_id))
        .where(audit.id > cursor[0], audit.action.in_(actions))
        .order_by(audit.id)
        .limit(limit)
    ).all()
    events: list[ForwardEvent] = []
    for row in rows:
        if row.id is None:  # the alert was deleted by retention meanwhile
            continue
        kind: str | None
        if row.action == "created":
            kind, change, ts = "new", None, row.first_detection_ns
        else:
            kind = update_kind(row.detail or {})
            if kind is None:
                continue
            change, ts = _change(row, kind), row.audit_ts_ns
        data = _alert_dict(b, row)
        if not _wanted(rule, row, data):
            continue
        event_id = event_uuid(instance, "audit", row.audit_id)
        events.append(ForwardEvent(event_id, kind, data, ts, change, (row.audit_id, cursor[1])))
    end = (rows[-1].audit_id, cursor[1]) if rows else cursor
    return ReadResult(events, end, len(rows))


def _read_central(
    session: Session,
    b: Backend,
    rule: RuleView,
    cursor: Cursor,
    instance: str,
    limit: int,
    guard: GapGuard,
    now: int,
) -> ReadResult:
    change_cursor, alert_cursor = cursor
    alerts = list(
        session.scalars(
            select(b.alert).where(b.alert.id > alert_cursor).order_by(b.alert.id).limit(limit)
        )
    )
    alerts = alerts[: guard.usable("alert", alert_cursor, [a.id for a in alerts], now)]
    events: list[ForwardEvent] = []
    for alert in alerts:
        data = _alert_dict(b, alert)
        if _wanted(rule, alert, data):
            event_id = event_uuid(instance, "alert", alert.id)
            events.append(
                ForwardEvent(
                    event_id,
                    "new",
                    data,
                    alert.first_detection_ns,
                    None,
                    (change_cursor, alert.id),
                )
            )
    alert_cursor = alerts[-1].id if alerts else alert_cursor
    rows = 0
    if rule.updates:
        changes = session.execute(
            select(b.audit, b.alert)
            .join(
                b.alert,
                and_(b.alert.sensor == b.audit.sensor, b.alert.alert_id == b.audit.alert_id),
            )
            .where(b.audit.id > change_cursor, b.audit.action.in_(UPDATE_ACTIONS))
            .order_by(b.audit.id)
            .limit(limit)
        ).all()
        changes = changes[: guard.usable("audit", change_cursor, [a.id for a, _ in changes], now)]
        for audit, alert in changes:
            if alert.id > alert_cursor:
                break  # its alert is not forwarded yet: next time
            rows += 1
            change_cursor = audit.id
            kind = update_kind(audit.detail or {})
            data = _alert_dict(b, alert)
            if kind is None or not _wanted(rule, alert, data):
                continue
            event_id = event_uuid(instance, "audit", audit.id)
            events.append(
                ForwardEvent(
                    event_id,
                    kind,
                    data,
                    audit.ts_ns,
                    _change(audit, kind),
                    (change_cursor, alert_cursor),
                )
            )
    return ReadResult(events, (change_cursor, alert_cursor), len(alerts) + rows)
