"""Alert writes on central: idempotent upserts merged per field, central's own changes.

``upsert_alerts`` is one ``INSERT … ON CONFLICT (sensor, alert_id) DO UPDATE`` whose SET
clauses are the merge rule of ``otwatch.sync.protocol.merge`` written in SQL, so concurrent
central instances (shared subscription) cannot lose an update to a read-modify-write race.
Copies of the same alert inside one batch are merged in Python first (PostgreSQL refuses to
update one row twice in a statement).
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pydantic_core
from sqlalchemy import (
    ColumnElement,
    Dialect,
    and_,
    bindparam,
    case,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from otwatch.central.store.db import dialect_insert
from otwatch.central.store.models import Alert, AuditEvent
from otwatch.dbcommon import rowcount
from otwatch.sync.protocol.merge import (
    REASON_RANK,
    SEVERITY_RANK,
    STATUS_RANK,
    merge_alert,
)

__all__ = [
    "add_audit",
    "alert_row",
    "apply_central_change",
    "get_alert",
    "revert_field",
    "upsert_alerts",
]

_CHUNK = 500


def alert_row(sensor_id: str, snapshot: dict[str, Any], now: int) -> dict[str, Any]:
    """A central ``alerts`` row from a sensor's ``AlertSnapshot`` dict (a copy with the
    central columns added: a dict merge costs a fifth of picking the keys one by one; keys
    that are not columns are never read by ``upsert_alerts``)."""
    row = {
        **snapshot,
        "sensor": sensor_id,
        "alert_id": snapshot["id"],
        "status_origin": "sensor",
        "severity_origin": "sensor",
        "received_ns": now,
    }
    del row["id"]  # the sensor's alert id is ``alert_id`` here; ``id`` is central's own
    return row


def _lit(value: Any) -> Any:
    """A constant rendered into the SQL (keeps the parameter list to the row's columns)."""
    return literal_column(f"'{value}'" if isinstance(value, str) else str(int(value)))


def _ranked(column: Any, ranks: dict[str | None, int], default: int) -> Any:
    whens = [
        (column.is_(None) if key is None else column == _lit(key), _lit(rank))
        for key, rank in ranks.items()
    ]
    return case(*whens, else_=_lit(default))


def _origin_rank(column: Any) -> Any:
    return _ranked(column, {"central": 1}, 0)


def _status_rank(status: Any, reason: Any) -> Any:
    return _ranked(status, STATUS_RANK, -1) * _lit(8) + _ranked(reason, REASON_RANK, 7)


def _severity_rank(severity: Any) -> Any:
    return _ranked(severity, SEVERITY_RANK, -1)


def _wins(
    new_hlc: Any, old_hlc: Any, new_origin: Any, old_origin: Any, new_v: Any, old_v: Any
) -> ColumnElement[bool]:
    return or_(
        new_hlc > old_hlc,
        and_(
            new_hlc == old_hlc,
            or_(
                _origin_rank(new_origin) > _origin_rank(old_origin),
                and_(_origin_rank(new_origin) == _origin_rank(old_origin), new_v > old_v),
            ),
        ),
    )


def _greater(a: Any, b: Any) -> Any:
    return case((a > b, a), else_=b)


def _lesser(a: Any, b: Any) -> Any:
    return case((a < b, a), else_=b)


_JSON_COLUMNS = ("tactics", "remediation", "fields")
_COLUMNS = tuple(c.key for c in Alert.__table__.c if c.key != "id" and c.computed is None)


_ROWS_PER_STATEMENT = 500
"""Rows per multi-row upsert on SQLite: 500 x 32 parameters stays below its limit (32,766
since SQLite 3.32)."""


@dataclass(frozen=True, slots=True)
class _Upsert:
    head: str
    """``INSERT INTO alerts (…)``"""
    group: str
    """One row's placeholders, ``(?, ?, …)``."""
    tail: str
    """``ON CONFLICT … DO UPDATE SET …``"""
    constants: dict[str, Any]
    params: Callable[[dict[str, Any]], tuple[Any, ...]]
    """A row's parameters in placeholder order."""
    statements: dict[int, str] = field(default_factory=dict)
    """The statement text by number of rows."""

    def sql(self, rows: int) -> str:
        text = self.statements.get(rows)
        if text is None:
            groups = ", ".join([self.group] * rows)
            text = self.statements[rows] = f"{self.head} VALUES {groups}{self.tail}"
        return text


def _group_end(text: str) -> int:
    """Where the parenthesised group that ``text`` starts with ends (the row's placeholders,
    with PostgreSQL's casts)."""
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return i + 1
    raise ValueError("unbalanced parentheses in the compiled upsert")


@functools.cache
def _upsert_sql(dialect: Dialect) -> _Upsert:
    """The merge upsert compiled once per dialect, run at driver level: SQLAlchemy's per-row
    parameter processing would cost more than the database does."""
    table = Alert.__table__
    stmt = dialect_insert(dialect.name)(table).values({k: bindparam(k) for k in _COLUMNS})
    ex, cur = stmt.excluded, table.c
    status_wins = _wins(
        ex.status_hlc,
        cur.status_hlc,
        ex.status_origin,
        cur.status_origin,
        _status_rank(ex.status, ex.close_reason),
        _status_rank(cur.status, cur.close_reason),
    )
    severity_wins = _wins(
        ex.severity_hlc,
        cur.severity_hlc,
        ex.severity_origin,
        cur.severity_origin,
        _severity_rank(ex.severity),
        _severity_rank(cur.severity),
    )
    set_ = {
        "detections": _greater(ex.detections, cur.detections),
        "first_detection_ns": _lesser(ex.first_detection_ns, cur.first_detection_ns),
        "last_detection_ns": _greater(ex.last_detection_ns, cur.last_detection_ns),
        "last_activity_ns": _greater(ex.last_activity_ns, cur.last_activity_ns),
        "received_ns": ex.received_ns,
    }
    for name in ("status", "close_reason", "status_hlc", "status_origin"):
        set_[name] = case((status_wins, getattr(ex, name)), else_=getattr(cur, name))
    for name in ("severity", "severity_hlc", "severity_origin"):
        set_[name] = case((severity_wins, getattr(ex, name)), else_=getattr(cur, name))
    stmt = stmt.on_conflict_do_update(index_elements=["sensor", "alert_id"], set_=set_)
    if not dialect.positional:  # psycopg's default is pyformat (named): use its %s form
        dialect = type(dialect)(paramstyle="format")  # type: ignore[call-arg]  # the concrete dialect takes it
    compiled = stmt.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    head, rest = str(compiled).split(" VALUES ", 1)
    end = _group_end(rest)
    group, tail = rest[:end], rest[end:]
    constants = {k: v for k, v in compiled.params.items() if k not in _COLUMNS}
    return _Upsert(head, group, tail, constants, _row_params(names, constants))


def _row_params(
    names: tuple[str, ...], constants: dict[str, Any]
) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function from a row dict to its parameters in placeholder order, JSON columns
    encoded (the row is not changed)."""
    getter = operator.itemgetter(*names)
    json_at = [i for i, name in enumerate(names) if name in _JSON_COLUMNS]

    def params(row: dict[str, Any]) -> tuple[Any, ...]:
        values = list(getter({**row, **constants} if constants else row))
        for i in json_at:
            values[i] = _json(values[i])
        return tuple(values)

    return params


def _json(value: Any) -> str:
    """Compact JSON text (pydantic-core's encoder: 5x ``json.dumps``; ingest calls this
    three times per alert)."""
    return pydantic_core.to_json(value).decode()


def upsert_alerts(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Insert or merge central ``alerts`` rows; returns the number of distinct alerts."""
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        key = (row["sensor"], row["alert_id"])
        current = merged.get(key)
        merged[key] = row if current is None else merge_alert(current, row)
    if not merged:
        return 0
    conn = session.connection()
    upsert = _upsert_sql(conn.dialect)
    params = [upsert.params(row) for row in merged.values()]
    if conn.dialect.name == "sqlite":
        # Many rows per statement: one parse and one trigger program run per few hundred
        # rows. (Before revision 0004 the FTS5 search trigger ran here too and flushed at
        # every statement; it is filled in bulk now, ``store.search_backlog``.)
        for i in range(0, len(params), _ROWS_PER_STATEMENT):
            chunk = params[i : i + _ROWS_PER_STATEMENT]
            flat = tuple(itertools.chain.from_iterable(chunk))
            conn.exec_driver_sql(upsert.sql(len(chunk)), flat)
    else:  # psycopg parses a long statement's placeholders in Python: one row, pipelined
        for i in range(0, len(params), _CHUNK):
            conn.exec_driver_sql(upsert.sql(1), params[i : i + _CHUNK])
    return len(merged)


def add_audit(session: Session, rows: list[dict[str, Any]]) -> None:
    """Append audit rows; one whose ``event_id`` is already there is skipped."""
    if not rows:
        return
    insert = dialect_insert(session.get_bind().dialect.name)
    stmt = insert(AuditEvent).on_conflict_do_nothing(index_elements=["event_id"])
    for i in range(0, len(rows), _CHUNK):
        session.execute(stmt, rows[i : i + _CHUNK])


def get_alert(session: Session, sensor_id: str, alert_id: int) -> Alert | None:
    return session.scalar(
        select(Alert).where(Alert.sensor == sensor_id, Alert.alert_id == alert_id)
    )


def apply_central_change(
    session: Session, alert: Alert, values: dict[str, Any], hlc: int, now: int
) -> None:
    """Central's own change (status/close reason or severity), stamped ``hlc``."""
    if "status" in values:
        alert.status, alert.close_reason = values["status"], values.get("close_reason")
        alert.status_hlc, alert.status_origin = hlc, "central"
    if "severity" in values:
        alert.severity, alert.severity_hlc, alert.severity_origin = (
            values["severity"],
            hlc,
            "central",
        )
    alert.last_activity_ns = max(alert.last_activity_ns, now)


def revert_field(
    session: Session, sensor_id: str, alert_id: int, field: str, hlc: int, state: dict[str, Any]
) -> bool:
    """A sensor refused central's change stamped ``hlc``: if the field still holds it, take
    the sensor's value (``state`` is the ``AlertFields`` of the refusal). Returns whether it
    did."""
    where = [Alert.sensor == sensor_id, Alert.alert_id == alert_id]
    if field == "status":
        where += [Alert.status_hlc == hlc, Alert.status_origin == "central"]
        values = {
            "status": state["status"],
            "close_reason": state.get("close_reason"),
            "status_hlc": state["status_hlc"],
            "status_origin": "sensor",
        }
    else:
        where += [Alert.severity_hlc == hlc, Alert.severity_origin == "central"]
        values = {
            "severity": state["severity"],
            "severity_hlc": state["severity_hlc"],
            "severity_origin": "sensor",
        }
    result = session.execute(
        update(Alert).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    return bool(rowcount(result))
