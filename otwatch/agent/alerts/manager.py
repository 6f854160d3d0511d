"""The alert manager: turns detections into de-duplicated alerts and applies triage actions.

It is Zeek's ``NOTICE()`` for otwatch: learned → muted → excluded → de-duplicate → batch write.
The lifecycle decisions live in ``lifecycle`` (pure); this module keeps the caches that make
``observe`` cheap per detection, and owns the store transactions, audit log and outbox.

Other processes (the CLI, the sync daemon) change alerts and rules in the same database; they
bump ``alerts_version``, which ``flush`` polls to refresh the caches. A flush never updates an
alert that another process closed meanwhile: the conditional update fails and a new alert is
raised instead, as the spec requires for Closed alerts.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import and_, delete, exists, insert, select, update
from sqlalchemy.orm import Session

from otwatch.agent.alerts.exclusions import ExclusionMatcher, ExclusionSpec
from otwatch.agent.alerts.lifecycle import (
    OPEN_STATUSES,
    Action,
    AlertState,
    Change,
    CloseReason,
    DetectionOutcome,
    Origin,
    RuleChange,
    Status,
    TransitionRefused,
    plan,
)
from otwatch.agent.catalog import Catalog
from otwatch.agent.engines.detection import Detection
from otwatch.agent.store.db import Store
from otwatch.agent.store.models import Alert, AlertRule, AuditEvent, ExclusionRule, OutboxEvent
from otwatch.agent.store.state import ALERTS_VERSION, bump_version, get_state, put_state
from otwatch.hlc import HybridClock

__all__ = ["ActionResult", "AlertManager", "FlushResult", "ManagerStats"]

_STANDARD_FIELDS = ("source_address", "destination_address", "source_mac", "destination_mac")
_OPEN = tuple(s.value for s in OPEN_STATUSES)
_HLC_STATE = "hlc"


@dataclass(slots=True)
class ManagerStats:
    detections: int = 0
    learned: int = 0
    muted: int = 0
    excluded: int = 0
    flushes: int = 0
    created: set[int] = field(default_factory=set)
    """Ids of alerts this manager raised."""
    updated: set[int] = field(default_factory=set)
    """Ids of existing alerts this manager bumped (may overlap ``created``)."""

    @property
    def alerts_new(self) -> int:
        return len(self.created)

    @property
    def alerts_updated(self) -> int:
        return len(self.updated - self.created)


@dataclass(frozen=True, slots=True)
class FlushResult:
    new: int
    updated: int


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What one bulk action did to one alert id."""

    alert_id: int
    outcome: str
    """``applied``, ``unchanged``, ``refused``, ``superseded`` or ``not_found``."""
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Pending:
    first: Detection
    count: int = 1
    first_ns: int = 0
    last_ns: int = 0
    fields: dict[str, Any] = field(default_factory=dict)


def _mac_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return ":".join(f"{b:02x}" for b in value)
    return str(value)


def _state(alert: Alert) -> AlertState:
    return AlertState(
        id=alert.id,
        type_id=alert.type_id,
        status=Status(alert.status),
        close_reason=CloseReason(alert.close_reason) if alert.close_reason else None,
        severity=alert.severity,
        learnable=alert.learnable,
        mutable=alert.mutable,
    )


class AlertManager:
    """Owns alert creation, de-duplication and triage for one sensor's store."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        *,
        sensor_id: str,
        site: str = "",
        zone: str = "",
        max_pending: int = 5_000,
        flush_interval_s: float = 1.0,
        clock: HybridClock | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.sensor_id, self.site, self.zone = sensor_id, site, zone
        self.max_pending = max_pending
        self.flush_interval_ns = int(flush_interval_s * 1e9)
        self.wall_ns = wall_ns
        self.stats = ManagerStats()
        self._pending: dict[str, _Pending] = {}
        self._open: dict[str, int] = {}
        self._learned: set[str] = set()
        self._muted: set[str] = set()
        self._exclusions = ExclusionMatcher()
        self._version = -1
        self._last_flush_ns = wall_ns()
        with store.session() as session:
            self.clock = clock or HybridClock(last=int(get_state(session, _HLC_STATE, 0)))
            self._reload(session)

    # -- caches ---------------------------------------------------------------------------

    def _reload(self, session: Session) -> None:
        self._version = int(get_state(session, ALERTS_VERSION, 0))
        rules = session.execute(select(AlertRule.kind, AlertRule.dedup_key)).all()
        self._learned = {key for kind, key in rules if kind == "learn"}
        self._muted = {key for kind, key in rules if kind == "mute"}
        self._open = dict(
            session.execute(
                select(Alert.dedup_key, Alert.id).where(Alert.status.in_(_OPEN)).order_by(Alert.id)
            ).all()
        )
        specs = []
        for rule in session.scalars(select(ExclusionRule).where(ExclusionRule.enabled)):
            specs.append(
                ExclusionSpec(
                    name=rule.name,
                    alert_types=frozenset(rule.alert_types),
                    subnets=tuple(ipaddress.ip_network(s, strict=False) for s in rule.subnets),
                    start_ns=rule.start_ns,
                    end_ns=rule.end_ns,
                )
            )
        self._exclusions = ExclusionMatcher(specs)

    def _refresh_if_changed(self, session: Session) -> None:
        if int(get_state(session, ALERTS_VERSION, 0)) != self._version:
            self._reload(session)

    # -- detections -----------------------------------------------------------------------

    def observe(self, det: Detection) -> DetectionOutcome:
        """Account one detection; it reaches the store at the next ``flush``."""
        self.stats.detections += 1
        key = det.dedup_key
        if key in self._learned:
            self.stats.learned += 1
            return DetectionOutcome.LEARNED
        if key in self._muted:
            self.stats.muted += 1
            return DetectionOutcome.MUTED
        if self._exclusions and self._exclusions.matching(det) is not None:
            self.stats.excluded += 1
            return DetectionOutcome.EXCLUDED
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = _Pending(det, 1, det.ts_ns, det.ts_ns)
            if len(self._pending) >= self.max_pending:
                self.flush()
        else:
            pending.count += 1
            if det.ts_ns > pending.last_ns:
                pending.last_ns = det.ts_ns
            elif det.ts_ns < pending.first_ns:
                pending.first_ns = det.ts_ns
        return DetectionOutcome.UPDATE_ALERT if key in self._open else DetectionOutcome.NEW_ALERT

    def flush_if_due(self) -> FlushResult | None:
        now = self.wall_ns()
        if self._pending and now - self._last_flush_ns >= self.flush_interval_ns:
            return self.flush()
        return None

    def flush(self) -> FlushResult:
        """Write pending detections in one transaction: bump open alerts, create new ones."""
        self._last_flush_ns = self.wall_ns()
        if not self._pending:
            return FlushResult(0, 0)
        pending, self._pending = self._pending, {}
        new = updated = 0
        now = self.wall_ns()
        with self.store.session() as session:
            self._refresh_if_changed(session)
            for key, item in pending.items():
                # Rules may have changed since observe() (another process learned the alert).
                if key in self._learned or key in self._muted:
                    continue
                alert_id = self._open.get(key)
                if alert_id is not None and self._bump(session, alert_id, item, now):
                    self._touch_outbox(session, alert_id, now)
                    self.stats.updated.add(alert_id)
                    updated += 1
                    continue
                alert_id = self._create(session, key, item, now)
                self._open[key] = alert_id
                self.stats.created.add(alert_id)
                new += 1
        self.stats.flushes += 1
        return FlushResult(new, updated)

    def _bump(self, session: Session, alert_id: int, item: _Pending, now: int) -> bool:
        result = session.execute(
            update(Alert)
            .where(Alert.id == alert_id, Alert.status.in_(_OPEN))
            .values(
                detections=Alert.detections + item.count,
                last_detection_ns=_max(Alert.last_detection_ns, item.last_ns),
                last_activity_ns=now,
            )
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    def _create(self, session: Session, key: str, item: _Pending, now: int) -> int:
        det = item.first
        alert_type = self.catalog[det.type_id]
        params = {
            k: v for k, v in det.fields.items() if k not in _STANDARD_FIELDS and k != "protocol"
        }
        alert_id = session.execute(
            insert(Alert).values(
                type_id=alert_type.id,
                name=alert_type.name,
                engine=alert_type.engine.value,
                category=alert_type.category,
                severity=alert_type.severity.value,
                status=Status.NEW.value,
                close_reason=None,
                dedup_key=key,
                source_address=det.fields.get("source_address"),
                destination_address=det.fields.get("destination_address"),
                source_mac=_mac_text(det.fields.get("source_mac")),
                destination_mac=_mac_text(det.fields.get("destination_mac")),
                protocol=det.fields.get("protocol"),
                first_detection_ns=item.first_ns,
                last_detection_ns=item.last_ns,
                last_activity_ns=now,
                detections=item.count,
                sensor=self.sensor_id,
                site=self.site,
                zone=self.zone,
                tactics=list(alert_type.tactics),
                learnable=alert_type.learnable,
                mutable=alert_type.mutable,
                message=det.message,
                remediation=list(alert_type.remediation),
                fields=_jsonable(params),
                status_hlc=0,
                severity_hlc=0,
            )
        ).inserted_primary_key[0]
        session.add(
            AuditEvent(
                alert_id=alert_id,
                ts_ns=now,
                actor=f"engine:{alert_type.engine.value}",
                origin=Origin.SENSOR.value,
                action="created",
                detail={"type": alert_type.id, "detections": item.count},
            )
        )
        self._touch_outbox(session, alert_id, now)
        return int(alert_id)

    @staticmethod
    def _touch_outbox(session: Session, alert_id: int, now: int) -> None:
        """Queue one snapshot event for the alert unless one is already waiting unpublished."""
        waiting = exists().where(
            and_(
                OutboxEvent.alert_id == alert_id,
                OutboxEvent.kind == "alert",
                OutboxEvent.published_ns.is_(None),
            )
        )
        if not session.scalar(select(waiting)):
            session.add(
                OutboxEvent(
                    event_id=str(uuid.uuid4()),
                    kind="alert",
                    alert_id=alert_id,
                    created_ns=now,
                    payload=None,
                )
            )

    # -- triage actions -------------------------------------------------------------------

    def apply(
        self,
        alert_ids: Iterable[int],
        action: Action,
        *,
        actor: str,
        origin: Origin = Origin.SENSOR,
        value: str | None = None,
        hlc: int | None = None,
    ) -> list[ActionResult]:
        """Apply one triage action to many alerts; report per id what happened.

        ``value`` is the new status or severity, or the comment text. ``hlc`` stamps a change
        made elsewhere (central); an older stamp than the field's last change is superseded.
        """
        self.flush()
        results: list[ActionResult] = []
        with self.store.session() as session:
            self._refresh_if_changed(session)
            changed = False
            for alert_id in alert_ids:
                result = self._apply_one(session, alert_id, action, actor, origin, value, hlc)
                results.append(result)
                changed |= result.outcome == "applied"
            if changed:
                self._version = bump_version(session)
                put_state(session, _HLC_STATE, self.clock.last)
        return results

    def _apply_one(
        self,
        session: Session,
        alert_id: int,
        action: Action,
        actor: str,
        origin: Origin,
        value: str | None,
        hlc: int | None,
    ) -> ActionResult:
        alert = session.get(Alert, alert_id)
        if alert is None:
            return ActionResult(alert_id, "not_found", f"alert {alert_id} does not exist")
        try:
            change = plan(_state(alert), action, origin, value)
        except (TransitionRefused, ValueError) as exc:
            return ActionResult(alert_id, "refused", str(exc))
        if change is None:
            return ActionResult(alert_id, "unchanged", _unchanged_text(alert, action))
        stamp = self.clock.observe(hlc) if hlc is not None else self.clock.now()
        field_hlc = alert.severity_hlc if action == Action.SET_SEVERITY else alert.status_hlc
        if hlc is not None and hlc < field_hlc:
            return ActionResult(
                alert_id, "superseded", f"alert {alert_id} was changed later on the sensor"
            )
        if change.reopens and alert.status == Status.CLOSED.value:
            duplicate = self._open.get(alert.dedup_key)
            if duplicate is not None and duplicate != alert.id:
                return ActionResult(
                    alert_id,
                    "refused",
                    f"alert {alert_id} cannot be reopened: alert {duplicate} is open for the "
                    "same traffic",
                )
        before = {
            "status": alert.status,
            "close_reason": alert.close_reason,
            "severity": alert.severity,
        }
        now = self.wall_ns()
        self._write_change(session, alert, change, action, stamp, now, actor, origin)
        detail: dict[str, Any] = {
            "before": before,
            "after": {
                "status": alert.status,
                "close_reason": alert.close_reason,
                "severity": alert.severity,
            },
            "hlc": stamp,
        }
        if action == Action.COMMENT:
            detail = {"text": value or "", "hlc": stamp}
        session.add(
            AuditEvent(
                alert_id=alert.id,
                ts_ns=now,
                actor=actor,
                origin=origin.value,
                action=action.value,
                detail=detail,
            )
        )
        session.add(
            OutboxEvent(
                event_id=str(uuid.uuid4()),
                kind=action.value,
                alert_id=alert.id,
                created_ns=now,
                payload={"actor": actor, "origin": origin.value, "ts_ns": now, **detail},
            )
        )
        return ActionResult(alert_id, "applied", _applied_text(alert, action))

    def _write_change(
        self,
        session: Session,
        alert: Alert,
        change: Change,
        action: Action,
        stamp: int,
        now: int,
        actor: str,
        origin: Origin,
    ) -> None:
        if action == Action.SET_SEVERITY:
            alert.severity, alert.severity_hlc = change.severity, stamp
        elif action != Action.COMMENT:
            alert.status, alert.close_reason = (
                change.status.value,
                (change.close_reason.value if change.close_reason else None),
            )
            alert.status_hlc = stamp
        alert.last_activity_ns = now
        if change.rule is not None:
            self._write_rule(session, alert, change.rule, now, actor, origin)
        key = alert.dedup_key
        if alert.status in _OPEN:
            self._open[key] = alert.id
        elif self._open.get(key) == alert.id:
            del self._open[key]

    def _write_rule(
        self, session: Session, alert: Alert, rule: RuleChange, now: int, actor: str, origin: Origin
    ) -> None:
        learn = rule in (RuleChange.ADD_LEARN, RuleChange.REMOVE_LEARN)
        kind, cache = ("learn", self._learned) if learn else ("mute", self._muted)
        if rule in (RuleChange.REMOVE_LEARN, RuleChange.REMOVE_MUTE):
            session.execute(
                delete(AlertRule).where(
                    AlertRule.kind == kind, AlertRule.dedup_key == alert.dedup_key
                )
            )
            cache.discard(alert.dedup_key)
            return
        existing = session.scalar(
            select(AlertRule.id).where(
                AlertRule.kind == kind, AlertRule.dedup_key == alert.dedup_key
            )
        )
        if existing is None:
            known = {
                "source_address": alert.source_address,
                "destination_address": alert.destination_address,
                "source_mac": alert.source_mac,
                "destination_mac": alert.destination_mac,
                "protocol": alert.protocol,
                **alert.fields,
            }
            key_fields = (
                self.catalog[alert.type_id].dedup_key if alert.type_id in self.catalog else ()
            )
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
        cache.add(alert.dedup_key)


def _max(column: Any, value: int) -> Any:
    from sqlalchemy import case

    return case((column < value, value), else_=column)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, bytes | bytearray):
            out[key] = value.hex()
        elif isinstance(value, str | int | float | bool) or value is None:
            out[key] = value
        elif isinstance(value, list | tuple | set | frozenset):
            out[key] = sorted(value) if isinstance(value, set | frozenset) else list(value)
        else:
            out[key] = str(value)
    return out


def _applied_text(alert: Alert, action: Action) -> str:
    match action:
        case Action.SET_STATUS:
            return f"alert {alert.id} is now {alert.status}"
        case Action.SET_SEVERITY:
            return f"alert {alert.id} severity is now {alert.severity}"
        case Action.LEARN:
            return f"alert {alert.id} learned and closed; this traffic will not alert again"
        case Action.UNLEARN:
            return f"alert {alert.id} unlearned; status is new again"
        case Action.MUTE:
            return f"alert {alert.id} muted and closed"
        case Action.UNMUTE:
            return f"alert {alert.id} unmuted; status is new again"
        case Action.COMMENT:
            return f"comment added to alert {alert.id}"
    return f"alert {alert.id} changed"  # pragma: no cover


def _unchanged_text(alert: Alert, action: Action) -> str:
    if action == Action.SET_SEVERITY:
        return f"alert {alert.id} severity is already {alert.severity}"
    if action == Action.LEARN:
        return f"alert {alert.id} is already learned"
    if action == Action.MUTE:
        return f"alert {alert.id} is already muted"
    return f"alert {alert.id} is already {alert.status}"
