"""The sensor outbox as the sync daemon sees it: read, snapshot, mark, rewind, delete.

Data functions take a ``Session``; the caller owns the transaction. Three rules keep the
stream lossless:

- Snapshots are read and the rows marked published in **one** transaction. The agent adds a
  new ``alert`` row only while no unpublished one exists for the alert, so a flush that lands
  after the snapshot finds the row published and queues a new one.
- A row once sent never becomes "unpublished" again: a rewind marks it ``RESEND``, so later
  detections get a row of their own instead of riding on a sequence number central may
  already have committed (and would skip as a duplicate).
- The newest row is never deleted, even once acknowledged: SQLite gives a new row the largest
  existing rowid + 1, so deleting every row would restart the sequence numbers at 1 and central
  would take the new events for duplicates.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, overload

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from otwatch.agent.store.devices import queue_device_events
from otwatch.agent.store.models import Alert, OutboxEvent
from otwatch.agent.store.models_devices import DeviceRow
from otwatch.agent.store.state import get_state, put_state
from otwatch.dbcommon import rowcount
from otwatch.sync.devices import device_snapshot
from otwatch.sync.protocol.messages import encode_raw
from otwatch.sync.protocol.streams import OutboxRow

__all__ = [
    "ACKED_HW",
    "EPOCH",
    "RESEND",
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
RESEND = 0
"""``published_ns`` of a row to send again. Not NULL: the agent coalesces new detections
only into rows that were never sent (NULL), since central skips a re-sent row it already
committed as a duplicate; a detection after a rewind therefore gets a row of its own."""
EPOCH = "sync.epoch"
_CHUNK = 500
_ALERT_COLUMNS = tuple(Alert.__table__.c)
_FIELDS_LIMIT = 8192


_READ_SQL = (
    "SELECT seq, kind, alert_id, device_id FROM outbox WHERE seq > ? "
    f"AND (published_ns IS NULL OR published_ns = {RESEND}) ORDER BY seq LIMIT ?"
)


def read_rows(session: Session, after_seq: int, acked_hw: int, limit: int) -> list[OutboxRow]:
    """Up to ``limit`` unpublished rows above ``after_seq`` and ``acked_hw``, in order."""
    rows = session.connection().exec_driver_sql(_READ_SQL, (max(after_seq, acked_hw), limit))
    return [OutboxRow(seq, kind, alert_id, device_id) for seq, kind, alert_id, device_id in rows]


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


@overload
def _change(payload: dict[str, Any], created_ns: int) -> dict[str, Any]: ...
@overload
def _change(payload: None, created_ns: int) -> None: ...
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


# The alert snapshot built by SQLite (``json_object``): ~10x faster than Python dicts and
# ``json.dumps`` per row. Strings are clipped to the ``AlertSnapshot`` limits here; the JSON
# columns are passed through only when SQLite proves them within the limits, otherwise the
# row takes the Python path (``snapshot``), which clips them.
_CLIPPED = {
    "type_id": 80, "name": 200, "engine": 32, "category": 64, "dedup_key": 64,
    "source_address": 64, "destination_address": 64, "source_mac": 17, "destination_mac": 17,
    "protocol": 32, "site": 64, "zone": 64, "message": 4096,
}  # fmt: skip
_PLAIN = ("id", "first_detection_ns", "last_detection_ns", "last_activity_ns", "detections")
_FLAGS = ("learnable", "mutable")
_JSON_LISTS = {"tactics": 200, "remediation": 4096}
"""List columns: at most 32 strings of at most this many characters each."""
_STATE = ("status", "close_reason", "severity", "status_hlc", "severity_hlc")


def _snapshot_sql() -> tuple[str, str]:
    """SQL for (the snapshot as JSON text, whether its JSON columns are within limits)."""
    pairs: list[str] = []
    for key in (c.key for c in Alert.__table__.c):
        if key in _CLIPPED:
            pairs.append(f"'{key}', substr(a.{key}, 1, {_CLIPPED[key]})")
        elif key in _PLAIN or key in _STATE:
            pairs.append(f"'{key}', a.{key}")
        elif key in _FLAGS:
            pairs.append(f"'{key}', json(CASE WHEN a.{key} THEN 'true' ELSE 'false' END)")
        elif key in _JSON_LISTS or key == "fields":
            pairs.append(f"'{key}', json(a.{key})")
    checks = [
        f"json_valid(a.{key}) AND json_type(a.{key}) = 'array' "
        f"AND json_array_length(a.{key}) <= 32 AND NOT EXISTS (SELECT 1 FROM json_each(a.{key}) "
        f"WHERE type <> 'text' OR length(value) > {limit})"
        for key, limit in _JSON_LISTS.items()
    ]
    checks.append(
        f"json_valid(a.fields) AND json_type(a.fields) = 'object' "
        f"AND length(a.fields) <= {_FIELDS_LIMIT} AND (SELECT count(*) <= 64 "
        f"AND coalesce(max(length(key)), 0) <= 64 FROM json_each(a.fields))"
    )
    return f"json_object({', '.join(pairs)})", " AND ".join(f"({c})" for c in checks)


_SNAPSHOT, _WITHIN_LIMITS = _snapshot_sql()
_EVENTS_SQL = f"""
SELECT o.seq, o.alert_id, o.created_ns, nullif(o.payload, 'null'), o.device_id,
  '{{"seq":' || o.seq || ',"id":' || json_quote(o.event_id) || ',"kind":' || json_quote(o.kind)
    || ',"alert_id":' || coalesce(o.alert_id, 'null') || ',"ts_ns":' || o.created_ns
    || ',"alert":',
  CASE WHEN a.id IS NULL THEN 'null' WHEN {_WITHIN_LIMITS} THEN {_SNAPSHOT} END
FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id
WHERE o.seq IN (SELECT value FROM json_each(?))
ORDER BY o.seq
"""
_MARK_SQL = "UPDATE outbox SET published_ns = ? WHERE seq IN (SELECT value FROM json_each(?))"


def load_events(session: Session, rows: Sequence[OutboxRow], now: int) -> list[tuple[int, bytes]]:
    """``(seq, Event JSON)`` for ``rows`` (those still in the outbox, in ``seq`` order),
    marked published in the same transaction.

    The rows are marked first: that takes the write lock, so the snapshots read next are the
    alerts' latest state, and a detection the agent flushes after this commit finds the row
    published and queues a new one (no detection is left out of every snapshot).
    """
    seqs = json.dumps([r.seq for r in rows])
    conn = session.connection()
    conn.exec_driver_sql(_MARK_SQL, (now, seqs))
    found = conn.exec_driver_sql(_EVENTS_SQL, (seqs,)).all()
    slow = [alert_id for _, alert_id, _, _, device, _, snap in found if snap is None and not device]
    fallback: dict[int, str] = {}
    if slow:  # JSON columns beyond the limits (never written by the agent): clip in Python
        for row in conn.execute(select(*_ALERT_COLUMNS).where(Alert.id.in_(slow))):
            fallback[row.id] = encode_raw(snapshot(row)).decode()
    wanted = [device for *_, device, _, _ in found if device is not None]
    devices = {}
    if wanted:
        stored = session.scalars(select(DeviceRow).where(DeviceRow.id.in_(wanted)))
        devices = {d.id: encode_raw(device_snapshot(d)).decode() for d in stored}
    events = []
    for seq, alert_id, created_ns, payload, device_id, head, snap in found:
        if device_id is not None:  # a device row: the device as it is now (null: forgotten)
            device = devices.get(device_id, "null")
            events.append((seq, f'{head}null,"device_id":{device_id},"device":{device}}}'.encode()))
            continue
        if payload is None:
            change = "null"
        else:
            change = encode_raw(_change(json.loads(payload), created_ns)).decode()
        alert = snap if snap is not None else fallback.get(alert_id, "null")
        events.append((seq, f'{head}{alert},"change":{change}}}'.encode()))
    return events


def rewind(session: Session, after_seq: int) -> int:
    """Mark rows above ``after_seq`` to be sent again (``RESEND``); returns how many."""
    result = session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.seq > after_seq, OutboxEvent.published_ns > RESEND)
        .values(published_ns=RESEND)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


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
    return rowcount(result)


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
    """Queue an ``alert`` row for every alert (resync) that has no unpublished one, and
    (without ``alert_ids``: a full snapshot) a ``device`` row for every device; returns how
    many rows were queued."""
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
    devices = 0
    if alert_ids is None:
        devices = queue_device_events(session, session.scalars(select(DeviceRow.id)), now)
    return len(ids) + devices


def get_epoch(session: Session) -> str:
    """This sensor's stream epoch, created on first use."""
    epoch = get_state(session, EPOCH)
    if not epoch:
        epoch = str(uuid.uuid4())
        put_state(session, EPOCH, epoch)
    return str(epoch)
