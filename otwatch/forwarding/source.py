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

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, and_, func, select, type_coerce
from sqlalchemy.orm import Session

from otwatch.forwarding.alert_rows import FIRST_NS, alert_json, alert_select_columns
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


def _change(
    action: str, actor: str, origin: str, detail: dict[str, Any], kind: str
) -> dict[str, Any]:
    return {
        "action": action,
        "kind": kind,
        "actor": actor,
        "origin": origin,
        "before": detail.get("before"),
        "after": detail.get("after"),
    }


def _detail(value: Any) -> dict[str, Any]:
    """An audit row's ``detail`` as selected: JSON text (SQLite) or decoded (PostgreSQL)."""
    decoded = json.loads(value) if isinstance(value, str) else value
    return decoded or {}


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
    detail: bool = True,
) -> ReadResult:
    """The rule's events after ``cursor`` (at most ``limit`` rows examined per feed).
    Without ``detail`` the alerts lack ``remediation`` and ``fields`` (only ECS sends them)."""
    if backend.central:
        return _read_central(session, backend, rule, cursor, instance, limit, guard, now, detail)
    return _read_sensor(session, backend, rule, cursor, instance, limit, detail)


def _audit_columns(b: Backend) -> list[Any]:
    """Audit columns first in every select: id, action, actor, origin, detail (text), ts."""
    audit = b.audit.__table__.c
    return [
        audit.id,
        audit.action,
        audit.actor,
        audit.origin,
        type_coerce(audit.detail, Text),
        audit.ts_ns,
    ]


_A = len(("id", "action", "actor", "origin", "detail", "ts_ns"))
"""Where the alert columns start in a change row."""


def _read_sensor(
    session: Session,
    b: Backend,
    rule: RuleView,
    cursor: Cursor,
    instance: str,
    limit: int,
    detail: bool,
) -> ReadResult:
    actions = ("created", *UPDATE_ACTIONS) if rule.updates else ("created",)
    audit, alert = b.audit.__table__, b.alert.__table__
    rows = session.execute(
        select(*_audit_columns(b), *alert_select_columns(alert, detail))
        .select_from(audit.outerjoin(alert, alert.c.id == audit.c.alert_id))
        .where(audit.c.id > cursor[0], audit.c.action.in_(actions))
        .order_by(audit.c.id)
        .limit(limit)
    ).all()
    events: list[ForwardEvent] = []
    flt, start_id = rule.filters, rule.start_alert_id
    for row in rows:
        audit_id, action, actor, origin, audit_detail, audit_ts, alert_id = row[: _A + 1]
        if alert_id is None or alert_id <= start_id:  # None: deleted by retention meanwhile
            continue
        kind: str | None
        change: dict[str, Any] | None
        if action == "created":
            kind, change, ts = "new", None, row[_A + FIRST_NS]
        else:
            changed = _detail(audit_detail)
            kind = update_kind(changed)
            if kind is None:
                continue
            change, ts = _change(action, actor, origin, changed, kind), audit_ts
        data = alert_json(row, _A, False, detail)
        if not matches(flt, data):
            continue
        event_id = event_uuid(instance, "audit", audit_id)
        events.append(ForwardEvent(event_id, kind, data, ts, change, (audit_id, cursor[1])))
    end = (rows[-1][0], cursor[1]) if rows else cursor
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
    detail: bool,
) -> ReadResult:
    change_cursor, alert_cursor = cursor
    audit, alert = b.audit.__table__, b.alert.__table__
    columns = alert_select_columns(alert, detail)
    alerts = session.execute(
        select(*columns).where(alert.c.id > alert_cursor).order_by(alert.c.id).limit(limit)
    ).all()
    alerts = alerts[: guard.usable("alert", alert_cursor, [a[0] for a in alerts], now)]
    events: list[ForwardEvent] = []
    flt, start_id = rule.filters, rule.start_alert_id
    for row in alerts:
        data = alert_json(row, 0, True, detail)
        alert_id = row[0]
        if alert_id > start_id and matches(flt, data):
            event_id = event_uuid(instance, "alert", alert_id)
            events.append(
                ForwardEvent(event_id, "new", data, row[FIRST_NS], None, (change_cursor, alert_id))
            )
    alert_cursor = alerts[-1][0] if alerts else alert_cursor
    rows = 0
    if rule.updates:
        changes = session.execute(
            select(*_audit_columns(b), *columns)
            .select_from(
                audit.join(
                    alert,
                    and_(alert.c.sensor == audit.c.sensor, alert.c.alert_id == audit.c.alert_id),
                )
            )
            .where(audit.c.id > change_cursor, audit.c.action.in_(UPDATE_ACTIONS))
            .order_by(audit.c.id)
            .limit(limit)
        ).all()
        changes = changes[: guard.usable("audit", change_cursor, [c[0] for c in changes], now)]
        for row in changes:
            audit_id, action, actor, origin, audit_detail, audit_ts, alert_id = row[: _A + 1]
            if alert_id > alert_cursor:
                break  # its alert is not forwarded yet: next time
            rows += 1
            change_cursor = audit_id
            changed = _detail(audit_detail)
            kind = update_kind(changed)
            if kind is None or alert_id <= start_id:
                continue
            data = alert_json(row, _A, True, detail)
            if not matches(flt, data):
                continue
            event_id = event_uuid(instance, "audit", audit_id)
            events.append(
                ForwardEvent(
                    event_id,
                    kind,
                    data,
                    audit_ts,
                    _change(action, actor, origin, changed, kind),
                    (change_cursor, alert_cursor),
                )
            )
    return ReadResult(events, (change_cursor, alert_cursor), len(alerts) + rows)
