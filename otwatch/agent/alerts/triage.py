"""Triage on the sensor: status, severity, learn, mute and comments, applied to stored alerts.

The decisions are the lifecycle's (``otwatch.alerts.lifecycle.plan``); this module stamps
them with the hybrid logical clock, writes them with their audit row and outbox event, and
bumps ``alerts_version`` so that the alert manager of a running sensor (another process)
reloads its rules. It keeps no cache, so the CLI and the sync daemon build it cheaply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from otwatch.agent.store import alerts as alert_store
from otwatch.agent.store.db import Store
from otwatch.agent.store.models import Alert
from otwatch.agent.store.state import bump_version, get_state, put_state
from otwatch.alerts.catalog import Catalog
from otwatch.alerts.lifecycle import (
    Action,
    AlertState,
    Change,
    Origin,
    RuleChange,
    Status,
    TransitionRefused,
    plan,
)
from otwatch.hlc import HybridClock

__all__ = ["HLC_STATE", "ActionResult", "AppliesActions", "Triage"]

HLC_STATE = "hlc"
"""``sensor_state`` key of the last hybrid logical clock value stamped on this sensor."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What one bulk action did to one alert id."""

    alert_id: int
    outcome: str
    """``applied``, ``unchanged``, ``refused``, ``superseded`` or ``not_found``."""
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AppliesActions(Protocol):
    """What applies triage actions to a store: a ``Triage``, or an ``AlertManager`` in a
    process that also detects."""

    @property
    def store(self) -> Store: ...

    def apply(
        self,
        alert_ids: Iterable[int],
        action: Action,
        *,
        actor: str,
        origin: Origin = ...,
        value: str | None = ...,
        hlc: int | None = ...,
    ) -> list[ActionResult]: ...


@dataclass(frozen=True, slots=True)
class _Request:
    action: Action
    actor: str
    origin: Origin
    value: str | None
    hlc: int | None


class Triage:
    """Applies operators' and central's actions to one sensor's stored alerts."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        *,
        clock: HybridClock | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.wall_ns = wall_ns
        if clock is None:
            with store.session() as session:
                last = int(get_state(session, HLC_STATE, 0))
            clock = HybridClock(lambda: self.wall_ns() // 1_000_000, last=last)
        self.clock = clock

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
        request = _Request(action, actor, origin, value, hlc)
        results: list[ActionResult] = []
        with self.store.session() as session:
            # Another process (CLI, sync daemon) may have stamped changes since this clock
            # was loaded: order after them, and never store a clock older than theirs.
            self.clock.observe(int(get_state(session, HLC_STATE, 0)))
            for alert_id in alert_ids:
                results.append(self._apply_one(session, alert_id, request))
            if any(result.outcome == "applied" for result in results):
                bump_version(session)
                stored = int(get_state(session, HLC_STATE, 0))
                put_state(session, HLC_STATE, max(self.clock.last, stored))
        return results

    def _apply_one(self, session: Session, alert_id: int, request: _Request) -> ActionResult:
        action, hlc = request.action, request.hlc
        alert = session.get(Alert, alert_id)
        if alert is None:
            return ActionResult(alert_id, "not_found", f"alert {alert_id} does not exist")
        try:
            change = plan(AlertState.of(alert, alert.id), action, request.origin, request.value)
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
            duplicate = alert_store.open_duplicate(session, alert)
            if duplicate is not None:
                return ActionResult(
                    alert_id,
                    "refused",
                    f"alert {alert_id} cannot be reopened: alert {duplicate} is open for the "
                    "same traffic",
                )
        before = _field_state(alert)
        now = self.wall_ns()
        self._write_change(session, alert, change, request, stamp, now)
        detail: dict[str, Any] = {"before": before, "after": _field_state(alert), "hlc": stamp}
        if action == Action.COMMENT:
            detail = {"text": request.value or "", "hlc": stamp}
        alert_store.record_change(
            session,
            alert.id,
            now=now,
            actor=request.actor,
            origin=request.origin,
            action=action.value,
            detail=detail,
        )
        return ActionResult(alert_id, "applied", _applied_text(alert, action))

    def _write_change(
        self,
        session: Session,
        alert: Alert,
        change: Change,
        request: _Request,
        stamp: int,
        now: int,
    ) -> None:
        if request.action == Action.SET_SEVERITY:
            alert.severity, alert.severity_hlc = change.severity, stamp
        elif request.action != Action.COMMENT:
            alert.status = change.status.value
            alert.close_reason = change.close_reason.value if change.close_reason else None
            alert.status_hlc = stamp
        alert.last_activity_ns = now
        if change.rule is not None:
            self._write_rule(session, alert, change.rule, request, now)

    def _write_rule(
        self, session: Session, alert: Alert, rule: RuleChange, request: _Request, now: int
    ) -> None:
        kind = "learn" if rule in (RuleChange.ADD_LEARN, RuleChange.REMOVE_LEARN) else "mute"
        if rule in (RuleChange.REMOVE_LEARN, RuleChange.REMOVE_MUTE):
            alert_store.delete_rule(session, kind, alert.dedup_key)
        elif not alert_store.rule_exists(session, kind, alert.dedup_key):
            known = alert.type_id in self.catalog
            alert_store.add_rule(
                session,
                alert,
                kind=kind,
                key_fields=self.catalog[alert.type_id].dedup_key if known else (),
                now=now,
                actor=request.actor,
                origin=request.origin,
            )


def _field_state(alert: Alert) -> dict[str, Any]:
    return {"status": alert.status, "close_reason": alert.close_reason, "severity": alert.severity}


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
