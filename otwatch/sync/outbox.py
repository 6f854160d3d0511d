"""The sensor outbox as the sync daemon sees it: read, snapshot, mark, rewind, delete.

Data functions take a ``Session``; the caller owns the transaction. Two rules keep the stream
lossless:

- Snapshots are read and the rows marked published in **one** transaction. The agent adds a
  new ``alert`` row only while no unpublished one exists for the alert, so a flush that lands
  after the snapshot finds the row published and queues a new one.
- The newest row is never deleted, even once acknowledged: SQLite gives a new row the largest
  existing rowid + 1, so deleting every row would restart the sequence numbers at 1 and central
  would take the new events for duplicates.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from otwatch.agent.store.models import Alert, OutboxEvent
from otwatch.agent.store.state import get_state, put_state
from otwatch.sync.protocol.streams import OutboxRow

__all__ = [
    "ACKED_HW",
    "EPOCH",
    "alert_fields",
    "delete_acked",
    "enqueue_snapshots",
    "get_epoch",
    "load_events",
    "max_seq",
    "pending_depth",
    "read_rows",
    "rewind",
    "snapshot",
]

ACKED_HW = "sync.acked_hw"
EPOCH = "sync.epoch"
_CHUNK = 500
_ALERT_COLUMNS = tuple(Alert.__table__.c)
_FIELDS_LIMIT = 8192


def read_rows(session: Session, after_seq: int, acked_hw: int, limit: int) -> list[OutboxRow]:
    rows = session.execute(
        select(OutboxEvent.seq, OutboxEvent.kind, OutboxEvent.alert_id)
        .where(
            OutboxEvent.seq > max(after_seq, acked_hw),
            OutboxEvent.published_ns.is_(None),
        )
        .order_by(OutboxEvent.seq)
        .limit(limit)
    ).all()
    return [OutboxRow(seq, kind, alert_id) for seq, kind, alert_id in rows]


def _clip(value: Any, limit: int) -> Any:
    return value[:limit] if isinstance(value, str) and len(value) > limit else value


def _small(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and len(value) <= 256)
    )


def _fields(fields: dict[str, Any]) -> dict[str, Any]:
    if len(fields) <= 16 and all(len(k) <= 64 and _small(v) for k, v in fields.items()):
        return fields  # the common case: a few scalars, certainly within the limits
    items = {str(k)[:64]: v for k, v in list(fields.items())[:64]}
    if len(json.dumps(items, default=str)) > _FIELDS_LIMIT:
        return {"truncated": True}
    return items


def snapshot(alert: Any) -> dict[str, Any]:
    """The alert (an ``Alert`` or a row of its columns) in ``AlertSnapshot`` form, clipped to
    the schema's limits."""
    return {
        "id": alert.id,
        "type_id": _clip(alert.type_id, 80),
        "name": _clip(alert.name, 200),
        "engine": _clip(alert.engine, 32),
        "category": _clip(alert.category, 64),
        "dedup_key": _clip(alert.dedup_key, 64),
        "source_address": _clip(alert.source_address, 64),
        "destination_address": _clip(alert.destination_address, 64),
        "source_mac": _clip(alert.source_mac, 17),
        "destination_mac": _clip(alert.destination_mac, 17),
        "protocol": _clip(alert.protocol, 32),
        "first_detection_ns": alert.first_detection_ns,
        "last_detection_ns": alert.last_detection_ns,
        "last_activity_ns": alert.last_activity_ns,
        "detections": alert.detections,
        "site": _clip(alert.site, 64),
        "zone": _clip(alert.zone, 64),
        "tactics": [_clip(str(t), 200) for t in alert.tactics[:32]],
        "learnable": bool(alert.learnable),
        "mutable": bool(alert.mutable),
        "message": _clip(alert.message, 4096),
        "remediation": [_clip(str(r), 4096) for r in alert.remediation[:32]],
        "fields": _fields(alert.fields or {}),
        "status": alert.status,
        "close_reason": alert.close_reason,
        "severity": alert.severity,
        "status_hlc": alert.status_hlc,
        "severity_hlc": alert.severity_hlc,
    }


def alert_fields(alert: Alert) -> dict[str, Any]:
    """The ``AlertFields`` form (what a command ack reports)."""
    return {
        "status": alert.status,
        "close_reason": alert.close_reason,
        "severity": alert.severity,
        "status_hlc": alert.status_hlc,
        "severity_hlc": alert.severity_hlc,
    }


_STATE_KEYS = ("status", "close_reason", "severity")
_CHANGE_KEYS = ("actor", "origin", "ts_ns", "hlc", "text")


def _field_state(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not all(k in value for k in ("status", "severity")):
        return None
    return {k: value.get(k) for k in _STATE_KEYS}


def _change(payload: dict[str, Any] | None, created_ns: int) -> dict[str, Any] | None:
    """The ``ChangeDetail`` form of a change row's payload (unknown keys are left out)."""
    if payload is None:
        return None
    out: dict[str, Any] = {k: payload[k] for k in _CHANGE_KEYS if k in payload}
    out["actor"] = _clip(str(out.get("actor", "unknown")), 128)
    out.setdefault("origin", "sensor")
    out.setdefault("ts_ns", created_ns)
    if "text" in out:
        out["text"] = _clip(str(out["text"]), 4096)
    for key in ("before", "after"):
        state = _field_state(payload.get(key))
        if state is not None:
            out[key] = state
    return out


def load_events(session: Session, rows: Sequence[OutboxRow], now: int) -> list[dict[str, Any]]:
    """Events (``Event`` form) for ``rows``, and mark those rows published, in one go."""
    seqs = [r.seq for r in rows]
    by_seq: dict[int, Any] = {}
    for i in range(0, len(seqs), _CHUNK):
        chunk = seqs[i : i + _CHUNK]
        for row in session.connection().execute(
            select(
                OutboxEvent.seq,
                OutboxEvent.event_id,
                OutboxEvent.kind,
                OutboxEvent.alert_id,
                OutboxEvent.created_ns,
                OutboxEvent.payload,
            ).where(OutboxEvent.seq.in_(chunk))
        ):
            by_seq[row.seq] = row
    alert_ids = sorted({r.alert_id for r in by_seq.values() if r.alert_id is not None})
    alerts: dict[int, dict[str, Any]] = {}
    for i in range(0, len(alert_ids), _CHUNK):
        chunk = alert_ids[i : i + _CHUNK]
        rows = session.connection().execute(select(*_ALERT_COLUMNS).where(Alert.id.in_(chunk)))
        for alert in rows:
            alerts[alert.id] = snapshot(alert)
    events = []
    for seq in seqs:
        row = by_seq.get(seq)
        if row is None:  # deleted meanwhile (acknowledged): nothing to send
            continue
        events.append(
            {
                "seq": row.seq,
                "id": row.event_id,
                "kind": row.kind,
                "alert_id": row.alert_id,
                "ts_ns": row.created_ns,
                "alert": alerts.get(row.alert_id) if row.alert_id is not None else None,
                "change": _change(row.payload, row.created_ns),
            }
        )
    for i in range(0, len(seqs), _CHUNK):
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.seq.in_(seqs[i : i + _CHUNK]))
            .values(published_ns=now)
            .execution_options(synchronize_session=False)
        )
    return events


def rewind(session: Session, after_seq: int) -> int:
    """Mark rows above ``after_seq`` unpublished (they are sent again); returns how many."""
    result = session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.seq > after_seq, OutboxEvent.published_ns.is_not(None))
        .values(published_ns=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


def delete_acked(session: Session, hw: int, now: int) -> int:
    """Forget rows central committed (up to ``hw``), keeping the newest row as rowid anchor."""
    newest = session.scalar(select(func.max(OutboxEvent.seq))) or 0
    result = session.execute(
        delete(OutboxEvent)
        .where(OutboxEvent.seq <= hw, OutboxEvent.seq < newest)
        .execution_options(synchronize_session=False)
    )
    # The anchor must not look pending: the agent would coalesce new detections into it.
    session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.seq <= hw, OutboxEvent.published_ns.is_(None))
        .values(published_ns=now)
        .execution_options(synchronize_session=False)
    )
    if hw > int(get_state(session, ACKED_HW, 0)):
        put_state(session, ACKED_HW, hw)
    return int(result.rowcount or 0)


def max_seq(session: Session) -> int:
    return int(session.scalar(select(func.max(OutboxEvent.seq))) or 0)


def pending_depth(session: Session, acked_hw: int) -> int:
    """Rows central has not acknowledged yet."""
    return int(
        session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.seq > acked_hw)
        )
        or 0
    )


def enqueue_snapshots(session: Session, now: int, alert_ids: Iterable[int] | None = None) -> int:
    """Queue an ``alert`` row for every alert (resync) that has no unpublished one."""
    waiting = select(OutboxEvent.alert_id).where(
        OutboxEvent.kind == "alert",
        OutboxEvent.published_ns.is_(None),
        OutboxEvent.alert_id.is_not(None),
    )
    stmt = select(Alert.id).where(Alert.id.not_in(waiting)).order_by(Alert.id)
    if alert_ids is not None:
        stmt = stmt.where(Alert.id.in_(list(alert_ids)))
    ids = list(session.scalars(stmt))
    for i in range(0, len(ids), _CHUNK):
        session.execute(
            insert(OutboxEvent),
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "kind": "alert",
                    "alert_id": alert_id,
                    "created_ns": now,
                    "payload": None,
                }
                for alert_id in ids[i : i + _CHUNK]
            ],
        )
    return len(ids)


def get_epoch(session: Session) -> str:
    """This sensor's stream epoch, created on first use."""
    epoch = get_state(session, EPOCH)
    if not epoch:
        epoch = str(uuid.uuid4())
        put_state(session, EPOCH, epoch)
    return str(epoch)
