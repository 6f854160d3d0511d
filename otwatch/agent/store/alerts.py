"""The SQL of the sensor's alerts: what the alert manager and triage read and write.

Like central's ``store/alerts.py``, every function takes an open ``Session`` and leaves the
transaction to the caller. Batch writes (``bump_alerts``, ``insert_alerts``,
``queue_snapshots``) are a few statements per flush, whatever the number of alerts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import BindParameter, Table, bindparam, case, delete, insert, select, update
from sqlalchemy.orm import Session

from otwatch.agent.store.models import Alert, AlertRule, AuditEvent, ExclusionRule, OutboxEvent
from otwatch.alerts.lifecycle import OPEN_STATUSES, Origin

__all__ = [
    "OPEN",
    "add_rule",
    "aggregate_state",
    "bump_alerts",
    "delete_rule",
    "enabled_exclusions",
    "insert_alerts",
    "open_alerts",
    "open_duplicate",
    "queue_snapshots",
    "record_change",
    "rule_exists",
    "rule_keys",
    "set_aggregate",
    "still_open",
]

OPEN = tuple(s.value for s in OPEN_STATUSES)
_CHUNK = 500
"""Ids per ``IN (…)``: under SQLite's bound-parameter limit."""
_TABLE = cast(Table, Alert.__table__)  # declarative __table__ is typed as a FromClause


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


# -- reads ----------------------------------------------------------------------------------


def rule_keys(session: Session) -> tuple[set[str], set[str]]:
    """The de-duplication keys of the learn rules and of the mute rules."""
    rules = session.execute(select(AlertRule.kind, AlertRule.dedup_key)).all()
    learned = {key for kind, key in rules if kind == "learn"}
    muted = {key for kind, key in rules if kind == "mute"}
    return learned, muted


def open_alerts(session: Session) -> dict[str, int]:
    """De-duplication key → id of every New or Active alert."""
    rows = session.execute(
        select(Alert.dedup_key, Alert.id).where(Alert.status.in_(OPEN)).order_by(Alert.id)
    )
    return dict(rows.all())


def enabled_exclusions(session: Session) -> list[ExclusionRule]:
    return list(session.scalars(select(ExclusionRule).where(ExclusionRule.enabled)))


def still_open(session: Session, alert_ids: Sequence[int]) -> set[int]:
    """Which of ``alert_ids`` are still New or Active (another process may have closed one)."""
    found: set[int] = set()
    for chunk in _chunks(alert_ids):
        found.update(
            session.scalars(select(Alert.id).where(Alert.id.in_(chunk), Alert.status.in_(OPEN)))
        )
    return found


def open_duplicate(session: Session, alert: Alert) -> int | None:
    """Another open alert for the same traffic as ``alert``, if any (it blocks a reopen)."""
    return session.scalar(
        select(Alert.id)
        .where(Alert.dedup_key == alert.dedup_key, Alert.status.in_(OPEN), Alert.id != alert.id)
        .limit(1)
    )


def aggregate_state(session: Session, alert_id: int) -> tuple[str, int, dict[str, Any] | None]:
    """Type id, detection count and fields of an aggregate (rate-limited) alert."""
    row = session.execute(
        select(_TABLE.c.type_id, _TABLE.c.detections, _TABLE.c.fields).where(
            _TABLE.c.id == alert_id
        )
    ).one()
    return row[0], row[1], row[2]


def rule_exists(session: Session, kind: str, dedup_key: str) -> bool:
    found = session.scalar(
        select(AlertRule.id).where(AlertRule.kind == kind, AlertRule.dedup_key == dedup_key)
    )
    return found is not None


# -- writes ---------------------------------------------------------------------------------


def bump_alerts(session: Session, bumps: Sequence[tuple[int, int, int]], now: int) -> None:
    """Add ``count`` detections to each ``(alert_id, count, last_ns)``; one ``executemany``."""
    if not bumps:
        return
    last: BindParameter[Any] = bindparam("last")
    statement = (
        update(_TABLE)
        .where(_TABLE.c.id == bindparam("alert_id"))
        .values(
            detections=_TABLE.c.detections + bindparam("count"),
            last_detection_ns=case(
                (_TABLE.c.last_detection_ns < last, last), else_=_TABLE.c.last_detection_ns
            ),
            last_activity_ns=now,
        )
    )
    session.execute(
        statement,
        [{"alert_id": alert_id, "count": count, "last": last} for alert_id, count, last in bumps],
    )


def insert_alerts(session: Session, rows: Sequence[dict[str, Any]], now: int) -> dict[str, int]:
    """Insert new alerts and their 'created' audit rows; returns dedup key → alert id."""
    if not rows:
        return {}
    result = session.execute(
        insert(Alert).returning(Alert.id, Alert.dedup_key, sort_by_parameter_order=True),
        list(rows),
    )
    created = {key: int(alert_id) for alert_id, key in result.all()}
    session.execute(
        insert(AuditEvent),
        [
            {
                "alert_id": created[row["dedup_key"]],
                "ts_ns": now,
                "actor": f"engine:{row['engine']}",
                "origin": Origin.SENSOR.value,
                "action": "created",
                "detail": {"type": row["type_id"], "detections": row["detections"]},
            }
            for row in rows
        ],
    )
    return created


def set_aggregate(
    session: Session,
    alert_id: int,
    *,
    message: str,
    fields: dict[str, Any],
    audit_detail: dict[str, Any],
    now: int,
) -> None:
    """Rewrite an aggregate alert's message and fields and audit what was folded into it."""
    session.execute(
        update(_TABLE).where(_TABLE.c.id == alert_id).values(message=message, fields=fields)
    )
    session.execute(
        insert(AuditEvent),
        [
            {
                "alert_id": alert_id,
                "ts_ns": now,
                "actor": "alert-manager",
                "origin": Origin.SENSOR.value,
                "action": "rate_limited",
                "detail": audit_detail,
            }
        ],
    )


def queue_snapshots(session: Session, alert_ids: Sequence[int], now: int) -> None:
    """Queue one snapshot event per alert unless one is already waiting unpublished."""
    if not alert_ids:
        return
    waiting: set[int | None] = set()
    for chunk in _chunks(alert_ids):
        waiting.update(
            session.scalars(
                select(OutboxEvent.alert_id).where(
                    OutboxEvent.alert_id.in_(chunk),
                    OutboxEvent.kind == "alert",
                    OutboxEvent.published_ns.is_(None),
                )
            )
        )
    rows = [
        {
            "event_id": str(uuid.uuid4()),
            "kind": "alert",
            "alert_id": alert_id,
            "created_ns": now,
            "payload": None,
        }
        for alert_id in dict.fromkeys(alert_ids)
        if alert_id not in waiting
    ]
    if rows:
        session.execute(insert(OutboxEvent), rows)


def record_change(
    session: Session,
    alert_id: int,
    *,
    now: int,
    actor: str,
    origin: Origin,
    action: str,
    detail: dict[str, Any],
) -> None:
    """The audit row of a change made on the sensor, and its outbox event for central (the
    payload is a ``ChangeDetail``)."""
    session.add(
        AuditEvent(
            alert_id=alert_id,
            ts_ns=now,
            actor=actor,
            origin=origin.value,
            action=action,
            detail=detail,
        )
    )
    session.add(
        OutboxEvent(
            event_id=str(uuid.uuid4()),
            kind=action,
            alert_id=alert_id,
            created_ns=now,
            payload={"actor": actor, "origin": origin.value, "ts_ns": now, **detail},
        )
    )


def delete_rule(session: Session, kind: str, dedup_key: str) -> None:
    session.execute(
        delete(AlertRule).where(AlertRule.kind == kind, AlertRule.dedup_key == dedup_key)
    )


def add_rule(
    session: Session,
    alert: Alert,
    *,
    kind: str,
    key_fields: Sequence[str],
    now: int,
    actor: str,
    origin: Origin,
) -> None:
    """A learn or mute rule for ``alert``'s traffic, keeping the values of its key fields."""
    known = {
        "source_address": alert.source_address,
        "destination_address": alert.destination_address,
        "source_mac": alert.source_mac,
        "destination_mac": alert.destination_mac,
        "protocol": alert.protocol,
        **alert.fields,
    }
    session.add(
        AlertRule(
            kind=kind,
            type_id=alert.type_id,
            dedup_key=alert.dedup_key,
            alert_id=alert.id,
            key_fields={name: known.get(name) for name in key_fields},
            created_ns=now,
            actor=actor,
            origin=origin.value,
        )
    )
