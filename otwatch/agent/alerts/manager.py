"""The alert manager: turns detections into de-duplicated alerts and applies triage actions.

It is Zeek's ``NOTICE()`` for otwatch: learned → muted → excluded → de-duplicate → rate limit
→ batch write.
The lifecycle decisions live in ``lifecycle`` (pure); this module keeps the caches that make
``observe`` cheap per detection, and owns the store transactions, audit log and outbox.

Other processes (the CLI, the sync daemon) change alerts and rules in the same database; they
bump ``alerts_version``, which ``flush`` polls to refresh the caches. A flush never updates an
alert that another process closed meanwhile: the conditional update fails and a new alert is
raised instead, as the spec requires for Closed alerts.

An alert storm stays bounded: past ``RateLimit.limit`` new distinct alerts of one type per
window, further new ones fold into one aggregate alert of that type ("Multiple violations"),
whose message and fields carry the count and a sample of sources; each flush that folds some
writes a ``rate_limited`` audit row on the aggregate (see ``ratelimit``).
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from otwatch.agent.alerts.exclusions import ExclusionMatcher, ExclusionSpec
from otwatch.agent.alerts.ratelimit import (
    DEFAULT_RATE_LIMIT,
    MAX_SOURCES,
    Folded,
    RateLimit,
    RateLimiter,
    aggregate_key,
)
from otwatch.agent.engines.detection import Detection
from otwatch.agent.store.db import Store
from otwatch.agent.store.models import Alert, AlertRule, AuditEvent, ExclusionRule, OutboxEvent
from otwatch.agent.store.state import ALERTS_VERSION, bump_version, get_state, put_state
from otwatch.alerts.catalog import Catalog
from otwatch.alerts.lifecycle import (
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
from otwatch.hlc import HybridClock

__all__ = ["ActionResult", "AlertManager", "FlushResult", "ManagerStats"]

_STANDARD_FIELDS = ("source_address", "destination_address", "source_mac", "destination_mac")
_OPEN = tuple(s.value for s in OPEN_STATUSES)
_HLC_STATE = "hlc"
_USER_DEFINED_RULE = "unauthorized_operation_was_detected_by_a_user_defined_rule"


@dataclass(slots=True)
class ManagerStats:
    detections: int = 0
    learned: int = 0
    muted: int = 0
    excluded: int = 0
    rate_limited: int = 0
    """Detections of new alerts folded into their type's aggregate alert."""
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
        rate_limit: RateLimit = DEFAULT_RATE_LIMIT,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.sensor_id, self.site, self.zone = sensor_id, site, zone
        self.max_pending = max_pending
        self.flush_interval_ns = int(flush_interval_s * 1e9)
        self.wall_ns = wall_ns
        self.stats = ManagerStats()
        self._pending: dict[str, _Pending] = {}
        self._limiter = RateLimiter(rate_limit)
        self._folded: dict[str, Folded] = {}
        """Aggregate key → what was folded into it since the last flush."""
        self._open: dict[str, int] = {}
        self._learned: set[str] = set()
        self._muted: set[str] = set()
        self._exclusions = ExclusionMatcher()
        self._version = -1
        self._last_flush_ns = wall_ns()
        with store.session() as session:
            self.clock = clock or HybridClock(
                lambda: self.wall_ns() // 1_000_000, last=int(get_state(session, _HLC_STATE, 0))
            )
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
            if rule.sensors and self.sensor_id not in rule.sensors:
                continue
            engine_types = None
            if rule.engines:
                engine_types = frozenset(
                    t.id for t in self.catalog.values() if t.engine.value in rule.engines
                )
            specs.append(
                ExclusionSpec(
                    name=rule.name,
                    alert_types=frozenset(rule.alert_types),
                    subnets=tuple(ipaddress.ip_network(s, strict=False) for s in rule.subnets),
                    start_ns=rule.start_ns,
                    end_ns=rule.end_ns,
                    macs=frozenset(m.lower() for m in rule.macs or ()),
                    direction=rule.direction or "any",
                    engine_types=engine_types,
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
            if key not in self._open and not self._limiter.admit(det.type_id, det.ts_ns):
                return self._fold(det)
            self._add_pending(key, det)
        else:
            pending.count += 1
            if det.ts_ns > pending.last_ns:
                pending.last_ns = det.ts_ns
            elif det.ts_ns < pending.first_ns:
                pending.first_ns = det.ts_ns
        return DetectionOutcome.UPDATE_ALERT if key in self._open else DetectionOutcome.NEW_ALERT

    def _add_pending(self, key: str, det: Detection) -> None:
        self._pending[key] = _Pending(det, 1, det.ts_ns, det.ts_ns)
        if len(self._pending) >= self.max_pending:
            self.flush()

    def _fold(self, det: Detection) -> DetectionOutcome:
        """Count a rate-limited new alert into its type's aggregate alert."""
        key = aggregate_key(det.type_id)
        if key in self._learned or key in self._muted:  # the operator silenced the aggregate
            self.stats.learned += key in self._learned
            self.stats.muted += key in self._muted
            return DetectionOutcome.LEARNED if key in self._learned else DetectionOutcome.MUTED
        self.stats.rate_limited += 1
        folded = self._folded.get(key)
        if folded is None:
            folded = self._folded[key] = Folded()
        folded.add(det)
        pending = self._pending.get(key)
        if pending is None:
            protocol = det.fields.get("protocol")
            aggregate = Detection(det.type_id, key, det.ts_ns, "", {"protocol": protocol})
            self._add_pending(key, aggregate)
        else:
            pending.count += 1
            pending.last_ns = max(pending.last_ns, det.ts_ns)
            pending.first_ns = min(pending.first_ns, det.ts_ns)
        return DetectionOutcome.RATE_LIMITED

    def flush_if_due(self) -> FlushResult | None:
        now = self.wall_ns()
        if self._pending and now - self._last_flush_ns >= self.flush_interval_ns:
            return self.flush()
        return None

    def flush(self) -> FlushResult:
        """Write pending detections in one transaction: bump open alerts, create new ones.

        Statements are batched (one UPDATE per alert still open, executed as one
        ``executemany``; one multi-row INSERT for new alerts, their audit rows and outbox rows)
        so an alert storm costs a few statements per flush, not several per alert.
        """
        self._last_flush_ns = self.wall_ns()
        if not self._pending:
            return FlushResult(0, 0)
        pending, self._pending = self._pending, {}
        folded, self._folded = self._folded, {}
        now = self.wall_ns()
        with self._kept_on_error(pending, folded), self.store.session() as session:
            self._refresh_if_changed(session)
            # Rules may have changed since observe() (another process learned the alert).
            items = {
                key: item
                for key, item in pending.items()
                if key not in self._learned and key not in self._muted
            }
            candidates = {self._open[key]: key for key in items if key in self._open}
            still_open = self._still_open(session, list(candidates))
            bumps = [
                (alert_id, items[key])
                for alert_id, key in candidates.items()
                if alert_id in still_open
            ]
            self._bump_many(session, bumps, now)
            created = self._create_many(
                session,
                [
                    (key, item)
                    for key, item in items.items()
                    if self._open.get(key) not in still_open
                ],
                now,
            )
            touched = [alert_id for alert_id, _ in bumps] + list(created.values())
            if folded:
                aggregates: dict[int, Folded] = {}
                for key, fold in folded.items():
                    alert_id = created.get(key, self._open.get(key))
                    if key in items and (key in created or alert_id in still_open):
                        aggregates[alert_id] = fold
                self._describe_aggregates(session, aggregates, now)
            self._touch_outbox_many(session, touched, now)
        self._open.update(created)
        self.stats.updated.update(alert_id for alert_id, _ in bumps)
        self.stats.created.update(created.values())
        self.stats.flushes += 1
        return FlushResult(len(created), len(bumps))

    @contextmanager
    def _kept_on_error(self, pending: dict[str, _Pending], folded: dict[str, Folded]):
        """A flush that fails (disk full, database locked) keeps its detections pending for
        the next one instead of losing them."""
        try:
            yield
        except BaseException:
            self._pending = {**pending, **self._pending}
            self._folded = {**folded, **self._folded}
            raise

    def _describe_aggregates(
        self, session: Session, aggregates: dict[int, Folded], now: int
    ) -> None:
        """Rewrite each aggregate alert's message and fields from its (already bumped) count
        and audit what this flush folded into it. A few rows per flush, whatever the storm."""
        limit = self._limiter.config
        table = Alert.__table__
        for alert_id, fold in aggregates.items():
            type_id, total, fields = session.execute(
                select(table.c.type_id, table.c.detections, table.c.fields).where(
                    table.c.id == alert_id
                )
            ).one()
            known = (fields or {}).get("sources") or []
            sources = list(dict.fromkeys([*known, *fold.sources]))[:MAX_SOURCES]
            name = self.catalog[type_id].name if type_id in self.catalog else type_id
            more = " …" if len(sources) >= MAX_SOURCES else ""
            message = (
                f"Multiple violations: {total:,} further detections of new '{name}' alerts "
                f"folded into this one by the rate limit ({limit.limit} new alerts of a type "
                f"per {limit.window_s:g} s); sources: {', '.join(sources) or 'unknown'}{more}"
            )
            session.execute(
                update(table)
                .where(table.c.id == alert_id)
                .values(
                    message=message,
                    fields={
                        "rate_limited": True,
                        "suppressed": total,
                        "sources": sources,
                        "limit": limit.limit,
                        "window_s": limit.window_s,
                    },
                )
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
                        "detail": {"folded": fold.count, "suppressed": total},
                    }
                ],
            )

    @staticmethod
    def _still_open(session: Session, alert_ids: list[int]) -> set[int]:
        """Which of ``alert_ids`` are still New or Active (another process may have closed one)."""
        found: set[int] = set()
        for start in range(0, len(alert_ids), 500):
            chunk = alert_ids[start : start + 500]
            found.update(
                session.scalars(
                    select(Alert.id).where(Alert.id.in_(chunk), Alert.status.in_(_OPEN))
                )
            )
        return found

    @staticmethod
    def _bump_many(session: Session, bumps: list[tuple[int, _Pending]], now: int) -> None:
        if not bumps:
            return
        statement = (
            update(Alert.__table__)
            .where(Alert.__table__.c.id == bindparam("alert_id"))
            .values(
                detections=Alert.__table__.c.detections + bindparam("count"),
                last_detection_ns=_max(Alert.__table__.c.last_detection_ns, bindparam("last")),
                last_activity_ns=now,
            )
        )
        session.execute(
            statement,
            [
                {"alert_id": alert_id, "count": item.count, "last": item.last_ns}
                for alert_id, item in bumps
            ],
        )

    def _create_many(
        self, session: Session, items: list[tuple[str, _Pending]], now: int
    ) -> dict[str, int]:
        """Insert new alerts and their 'created' audit rows; returns dedup key → alert id."""
        if not items:
            return {}
        rows = [self._alert_row(key, item, now) for key, item in items]
        result = session.execute(
            insert(Alert).returning(Alert.id, Alert.dedup_key, sort_by_parameter_order=True),
            rows,
        )
        created = {key: int(alert_id) for alert_id, key in result.all()}
        session.execute(
            insert(AuditEvent),
            [
                {
                    "alert_id": created[key],
                    "ts_ns": now,
                    "actor": f"engine:{row['engine']}",
                    "origin": Origin.SENSOR.value,
                    "action": "created",
                    "detail": {"type": row["type_id"], "detections": row["detections"]},
                }
                for (key, _item), row in zip(items, rows, strict=True)
            ],
        )
        return created

    def _alert_row(self, key: str, item: _Pending, now: int) -> dict[str, Any]:
        det = item.first
        alert_type = self.catalog[det.type_id]
        fields = det.fields
        params = {k: v for k, v in fields.items() if k not in _STANDARD_FIELDS and k != "protocol"}
        return {
            "type_id": alert_type.id,
            "name": alert_type.name,
            "engine": alert_type.engine.value,
            "category": alert_type.category,
            "severity": _severity(det, alert_type.severity.value),
            "status": Status.NEW.value,
            "close_reason": None,
            "dedup_key": key,
            "source_address": fields.get("source_address"),
            "destination_address": fields.get("destination_address"),
            "source_mac": _mac_text(fields.get("source_mac")),
            "destination_mac": _mac_text(fields.get("destination_mac")),
            "protocol": fields.get("protocol"),
            "first_detection_ns": item.first_ns,
            "last_detection_ns": item.last_ns,
            "last_activity_ns": now,
            "detections": item.count,
            "sensor": self.sensor_id,
            "site": self.site,
            "zone": self.zone,
            "tactics": list(alert_type.tactics),
            "learnable": alert_type.learnable,
            "mutable": alert_type.mutable,
            "message": det.message,
            "remediation": list(alert_type.remediation),
            "fields": _jsonable(params),
            "status_hlc": 0,
            "severity_hlc": 0,
        }

    @staticmethod
    def _touch_outbox_many(session: Session, alert_ids: list[int], now: int) -> None:
        """Queue one snapshot event per alert unless one is already waiting unpublished."""
        if not alert_ids:
            return
        waiting: set[int] = set()
        for start in range(0, len(alert_ids), 500):
            chunk = alert_ids[start : start + 500]
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
            # Another process (CLI, sync daemon) may have stamped changes since this clock
            # was loaded: order after them, and never store a clock older than theirs.
            self.clock.observe(int(get_state(session, _HLC_STATE, 0)))
            changed = False
            for alert_id in alert_ids:
                result = self._apply_one(session, alert_id, action, actor, origin, value, hlc)
                results.append(result)
                changed |= result.outcome == "applied"
            if changed:
                self._version = bump_version(session)
                stored = int(get_state(session, _HLC_STATE, 0))
                put_state(session, _HLC_STATE, max(self.clock.last, stored))
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


def _severity(det: Detection, catalog_severity: str) -> str:
    """User-defined rules carry the severity their author chose (spec section 5)."""
    chosen = det.fields.get("rule_severity")
    if det.type_id == _USER_DEFINED_RULE and chosen in ("low", "medium", "high"):
        return str(chosen)
    return catalog_severity


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
