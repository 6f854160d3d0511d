"""Sensor-side auto-close and retention (spec sections 2 and 6).

- **Auto-close**: a New alert with no identical traffic for the auto-close period (spec: 90
  days; a detection resets the count because it moves the last detection) is closed through
  ``Triage.apply`` as ``system:auto-close``, so it is audited and synced like any
  change, and then marked with close reason ``auto``. The lifecycle has no action that sets
  that reason, so the reason is set right after the apply, in the alert, its audit row and
  its outbox change, and a fresh snapshot is queued for central.
- **Retention**: alerts first detected longer ago than the retention (spec: 90 days,
  whatever the status) are deleted with their PCAP evidence. The alert with the highest id
  is kept even when expired: SQLite hands out ``max(id) + 1`` and central knows alerts by
  id, so ids must never be reused. Audit rows stay (the event timeline is kept by count).
  Central applies the same retention to its copy.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, exists, func, select

from otwatch.agent.alerts.triage import AppliesActions
from otwatch.agent.capture.ring import resolve_path
from otwatch.agent.store.db import Store
from otwatch.agent.store.models import Alert, AuditEvent, OutboxEvent
from otwatch.agent.store.models_pcap import PcapEvidence
from otwatch.agent.store.state import bump_version
from otwatch.alerts.lifecycle import Action, Origin

__all__ = ["ACTOR", "DAY_NS", "RetentionResult", "run_retention"]

DAY_NS = 86_400 * 1_000_000_000
ACTOR = "system:auto-close"
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class RetentionResult:
    auto_closed: int
    deleted: int

    def as_dict(self) -> dict[str, int]:
        return {"auto_closed": self.auto_closed, "deleted": self.deleted}


def _mark_auto(session: Any, alert_id: int, now: int, period_ns: int) -> None:
    alert = session.get(Alert, alert_id)
    if alert is None or (alert.status, alert.close_reason) != ("closed", "manual"):
        return
    alert.close_reason = "auto"
    state = {"status": "closed", "severity": alert.severity}
    # The audit log is append-only: the apply's row stays, this one records the reason.
    session.add(
        AuditEvent(
            alert_id=alert_id,
            ts_ns=now,
            actor=ACTOR,
            origin=Origin.SENSOR.value,
            action="status",
            detail={
                "before": {**state, "close_reason": "manual"},
                "after": {**state, "close_reason": "auto"},
                "reason": f"no identical traffic for {period_ns // DAY_NS} days",
            },
        )
    )
    change = session.scalar(
        select(OutboxEvent)
        .where(
            OutboxEvent.alert_id == alert_id,
            OutboxEvent.kind == "status",
            OutboxEvent.published_ns.is_(None),
        )
        .order_by(OutboxEvent.seq.desc())
    )
    payload = dict(change.payload or {}) if change is not None else {}
    if isinstance(payload.get("after"), dict) and payload.get("actor") == ACTOR:
        change.payload = {**payload, "after": {**payload["after"], "close_reason": "auto"}}
    waiting = exists().where(
        and_(
            OutboxEvent.alert_id == alert_id,
            OutboxEvent.kind == "alert",
            OutboxEvent.published_ns.is_(None),
        )
    )
    if not session.scalar(select(waiting)):
        session.add(OutboxEvent(event_id=str(uuid.uuid4()), kind="alert", alert_id=alert_id,
                                created_ns=now, payload=None))  # fmt: skip


def _auto_close(triage: AppliesActions, now: int, period_ns: int) -> int:
    store = triage.store
    closed = 0
    while True:
        with store.session() as session:
            ids = list(
                session.scalars(
                    select(Alert.id)
                    .where(Alert.status == "new", Alert.last_detection_ns < now - period_ns)
                    .order_by(Alert.id)
                    .limit(_BATCH)
                )
            )
        if not ids:
            return closed
        results = triage.apply(
            ids, Action.SET_STATUS, actor=ACTOR, origin=Origin.SENSOR, value="closed"
        )
        applied = [r.alert_id for r in results if r.outcome == "applied"]
        with store.session() as session:
            for alert_id in applied:
                _mark_auto(session, alert_id, now, period_ns)
        closed += len(applied)
        if len(applied) < len(ids):  # the rest were refused (e.g. changed meanwhile): stop
            return closed


def _delete_expired(store: Store, now: int, retention_ns: int) -> int:
    deleted = 0
    data_dir = Path(store.data_dir)
    while True:
        with store.session() as session:
            top = session.scalar(select(func.max(Alert.id)))
            ids = list(
                session.scalars(
                    select(Alert.id)
                    .where(Alert.first_detection_ns < now - retention_ns, Alert.id != top)
                    .limit(_BATCH)
                )
            )
            if not ids:
                return deleted
            for row in session.scalars(select(PcapEvidence).where(PcapEvidence.alert_id.in_(ids))):
                if row.path:
                    resolve_path(row.path, data_dir).unlink(missing_ok=True)
            session.execute(delete(PcapEvidence).where(PcapEvidence.alert_id.in_(ids)))
            session.execute(delete(Alert).where(Alert.id.in_(ids)))
            bump_version(session)
        deleted += len(ids)


def run_retention(
    triage: AppliesActions,
    *,
    auto_close_ns: int | None = 90 * DAY_NS,
    retention_ns: int | None = 90 * DAY_NS,
    now: int | None = None,
) -> RetentionResult:
    """Auto-close stale New alerts, then delete expired ones; None switches a rule off."""
    now = time.time_ns() if now is None else now
    closed = _auto_close(triage, now, auto_close_ns) if auto_close_ns else 0
    deleted = _delete_expired(triage.store, now, retention_ns) if retention_ns else 0
    return RetentionResult(closed, deleted)
