"""The alert manager: turns detections into de-duplicated alerts (the detection path).

It is Zeek's ``NOTICE()`` for otwatch: learned → muted → excluded → de-duplicate → rate limit
→ batch write. It keeps the caches that make ``observe`` cheap per detection (learn and mute
keys, exclusions, the open alert of each de-duplication key); the SQL is in
``agent/store/alerts.py``; triage actions are ``triage.Triage``'s.

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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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
from otwatch.agent.alerts.triage import ActionResult, Triage
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import mac_text
from otwatch.agent.store import alerts as alert_store
from otwatch.agent.store.db import Store
from otwatch.agent.store.state import ALERTS_VERSION, get_state
from otwatch.alerts.catalog import Catalog
from otwatch.alerts.lifecycle import Action, DetectionOutcome, Origin, Status
from otwatch.hlc import HybridClock

__all__ = ["ActionResult", "AlertManager", "FlushResult", "ManagerStats"]

_STANDARD_FIELDS = ("source_address", "destination_address", "source_mac", "destination_mac")
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


@dataclass(slots=True)
class _Pending:
    first: Detection
    count: int = 1
    first_ns: int = 0
    last_ns: int = 0
    fields: dict[str, Any] = field(default_factory=dict)


def _mac_field(value: Any) -> str | None:
    """A MAC address field as text: engines give bytes, rules and tests may give text."""
    if isinstance(value, bytes | bytearray):
        return mac_text(value)
    return None if value is None else str(value)


class AlertManager:
    """Raises and de-duplicates the alerts of one sensor's detections (see the module doc).

    Build one with ``otwatch.agent.alerts.build.alert_manager``; callers that only change
    alerts (CLI, sync, maintenance) build a ``Triage`` instead and load no caches.
    """

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        *,
        sensor_id: str,
        site: str = "",
        zone: str = "",
        max_pending: int = 5_000,
        clock: HybridClock | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
        rate_limit: RateLimit = DEFAULT_RATE_LIMIT,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.sensor_id, self.site, self.zone = sensor_id, site, zone
        self.max_pending = max_pending
        self.wall_ns = wall_ns
        self.stats = ManagerStats()
        self._pending: dict[str, _Pending] = {}
        self._limiter = RateLimiter(rate_limit)
        self._folded: dict[str, Folded] = {}
        """Aggregate key → what was folded into it since the last flush."""
        self._open: dict[str, int] = {}
        self._learned: set[str] = set()
        self._muted: set[str] = set()
        self._exclusions: ExclusionMatcher | None = None
        """None while no exclusion rule applies (the common case: one test per detection)."""
        self._version = -1
        self._triage: Triage | None = None
        self._clock = clock
        with store.session() as session:
            self._reload(session)

    # -- caches ---------------------------------------------------------------------------

    def _reload(self, session: Session) -> None:
        self._version = int(get_state(session, ALERTS_VERSION, 0))
        self._learned, self._muted = alert_store.rule_keys(session)
        self._open = alert_store.open_alerts(session)
        specs = []
        for rule in alert_store.enabled_exclusions(session):
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
        self._exclusions = ExclusionMatcher(specs) if specs else None

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
        if self._exclusions is not None and self._exclusions.matching(det) is not None:
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

    def repeat(self, det: Detection, ts_ns: int) -> DetectionOutcome:
        """``observe(det)`` with its time replaced by ``ts_ns``: an engine raised ``det``
        again unchanged but for its time. While the key's alert is pending (and no exclusion
        could judge the new time differently), only its count and times change, so nothing
        is built; otherwise the detection is rebuilt and observed."""
        key = det.dedup_key
        pending = self._pending.get(key)
        if (
            pending is None
            or self._exclusions is not None
            or key in self._learned  # pending keys pass both checks; after a failed flush
            or key in self._muted  # reloaded the rules they may not
        ):
            return self.observe(det._replace(ts_ns=ts_ns))
        self.stats.detections += 1
        pending.count += 1
        if ts_ns > pending.last_ns:
            pending.last_ns = ts_ns
        elif ts_ns < pending.first_ns:
            pending.first_ns = ts_ns
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

    def flush(self) -> FlushResult:
        """Write pending detections in one transaction: bump open alerts, create new ones.

        Statements are batched (one UPDATE per alert still open, executed as one
        ``executemany``; one multi-row INSERT for new alerts, their audit rows and outbox rows)
        so an alert storm costs a few statements per flush, not several per alert.
        """
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
            still_open = alert_store.still_open(session, list(candidates))
            bumps = [
                (alert_id, items[key])
                for alert_id, key in candidates.items()
                if alert_id in still_open
            ]
            alert_store.bump_alerts(
                session, [(alert_id, item.count, item.last_ns) for alert_id, item in bumps], now
            )
            created = alert_store.insert_alerts(
                session,
                [
                    self._alert_row(key, item, now)
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
                    if alert_id is None or key not in items:
                        continue
                    if key in created or alert_id in still_open:
                        aggregates[alert_id] = fold
                self._describe_aggregates(session, aggregates, now)
            alert_store.queue_snapshots(session, touched, now)
        self._open.update(created)
        self.stats.updated.update(alert_id for alert_id, _ in bumps)
        self.stats.created.update(created.values())
        self.stats.flushes += 1
        return FlushResult(len(created), len(bumps))

    @contextmanager
    def _kept_on_error(
        self, pending: dict[str, _Pending], folded: dict[str, Folded]
    ) -> Iterator[None]:
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
        for alert_id, fold in aggregates.items():
            type_id, total, fields = alert_store.aggregate_state(session, alert_id)
            known = (fields or {}).get("sources") or []
            sources = list(dict.fromkeys([*known, *fold.sources]))[:MAX_SOURCES]
            name = self.catalog[type_id].name if type_id in self.catalog else type_id
            more = " …" if len(sources) >= MAX_SOURCES else ""
            message = (
                f"Multiple violations: {total:,} further detections of new '{name}' alerts "
                f"folded into this one by the rate limit ({limit.limit} new alerts of a type "
                f"per {limit.window_s:g} s); sources: {', '.join(sources) or 'unknown'}{more}"
            )
            alert_store.set_aggregate(
                session,
                alert_id,
                message=message,
                fields={
                    "rate_limited": True,
                    "suppressed": total,
                    "sources": sources,
                    "limit": limit.limit,
                    "window_s": limit.window_s,
                },
                audit_detail={"folded": fold.count, "suppressed": total},
                now=now,
            )

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
            "source_mac": _mac_field(fields.get("source_mac")),
            "destination_mac": _mac_field(fields.get("destination_mac")),
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

    # -- triage in the same process --------------------------------------------------------

    @property
    def triage(self) -> Triage:
        """Triage on this manager's store and catalog (built on first use)."""
        if self._triage is None:
            self._triage = Triage(self.store, self.catalog, clock=self._clock, wall_ns=self.wall_ns)
        return self._triage

    @property
    def clock(self) -> HybridClock:
        return self.triage.clock

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
        """``Triage.apply`` for a process that also detects (tests, benches, in-process
        tools): pending detections are written first and the caches follow the change."""
        self.flush()
        results = self.triage.apply(
            alert_ids, action, actor=actor, origin=origin, value=value, hlc=hlc
        )
        if any(result.outcome == "applied" for result in results):
            with self.store.session() as session:
                self._reload(session)
        return results


def _severity(det: Detection, catalog_severity: str) -> str:
    """User-defined rules carry the severity their author chose (spec section 5)."""
    chosen = det.fields.get("rule_severity")
    if det.type_id == _USER_DEFINED_RULE and chosen in ("low", "medium", "high"):
        return str(chosen)
    return catalog_severity


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
