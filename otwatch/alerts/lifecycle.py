"""Alert lifecycle rules (spec section 2) as pure decisions, no I/O.

Every function takes the alert's current state and returns the change to make, ``None`` for
"nothing to do", or raises ``TransitionRefused`` with the reason an operator reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from otwatch.alerts.catalog import Severity
from otwatch.errors import OtwatchError

__all__ = [
    "SENSOR_ONLY",
    "Action",
    "AlertState",
    "Change",
    "CloseReason",
    "DetectionOutcome",
    "Origin",
    "RuleChange",
    "Status",
    "TransitionRefused",
    "on_detection",
    "plan",
]


class Status(StrEnum):
    NEW = "new"
    ACTIVE = "active"
    CLOSED = "closed"


OPEN_STATUSES = (Status.NEW, Status.ACTIVE)


class CloseReason(StrEnum):
    MANUAL = "manual"
    LEARNED = "learned"
    MUTED = "muted"
    AUTO = "auto"
    """No identical traffic for the auto-close period (spec: 90 days)."""


class Origin(StrEnum):
    SENSOR = "sensor"
    CENTRAL = "central"


class Action(StrEnum):
    SET_STATUS = "status"
    SET_SEVERITY = "severity"
    LEARN = "learn"
    UNLEARN = "unlearn"
    MUTE = "mute"
    UNMUTE = "unmute"
    COMMENT = "comment"


SENSOR_ONLY = frozenset({Action.UNLEARN, Action.MUTE, Action.UNMUTE})
"""Actions only an operator on the sensor may take (spec section 2); central refuses them.
Comments come from either side (the portal's comments, a step beyond the spec). ``Action``
is a ``StrEnum``, so ``"mute" in SENSOR_ONLY`` holds for the plain strings of commands and
URLs too."""


class RuleChange(StrEnum):
    ADD_LEARN = "add_learn"
    REMOVE_LEARN = "remove_learn"
    ADD_MUTE = "add_mute"
    REMOVE_MUTE = "remove_mute"


class DetectionOutcome(StrEnum):
    LEARNED = "learned"
    MUTED = "muted"
    EXCLUDED = "excluded"
    NEW_ALERT = "new_alert"
    UPDATE_ALERT = "update_alert"
    RATE_LIMITED = "rate_limited"
    """A new alert over its type's rate limit, folded into the type's aggregate alert."""


class TransitionRefused(OtwatchError):
    """The requested change is not allowed in the alert's current state."""


@dataclass(frozen=True, slots=True)
class AlertState:
    """What the lifecycle rules need to know about an alert."""

    id: int
    type_id: str
    status: Status
    close_reason: CloseReason | None
    severity: str
    learnable: bool
    mutable: bool

    @classmethod
    def of(cls, alert: Any, alert_id: int) -> AlertState:
        """The state of a stored alert (either store's ``Alert``: the ``AlertColumns``);
        ``alert_id`` is the id the operator knows it by."""
        return cls(
            id=alert_id,
            type_id=alert.type_id,
            status=Status(alert.status),
            close_reason=CloseReason(alert.close_reason) if alert.close_reason else None,
            severity=alert.severity,
            learnable=alert.learnable,
            mutable=alert.mutable,
        )


@dataclass(frozen=True, slots=True)
class Change:
    """The result of a permitted action."""

    status: Status
    close_reason: CloseReason | None
    severity: str
    rule: RuleChange | None = None

    @property
    def reopens(self) -> bool:
        return self.status in OPEN_STATUSES


def on_detection(
    open_alert_id: int | None, *, learned: bool, muted: bool, excluded: bool
) -> DetectionOutcome:
    """Learned, then muted, then excluded traffic raises nothing; otherwise the open alert for
    the same traffic (status New or Active) is updated, or a new alert is raised. A Closed
    alert is never updated: the caller passes only open alerts."""
    if learned:
        return DetectionOutcome.LEARNED
    if muted:
        return DetectionOutcome.MUTED
    if excluded:
        return DetectionOutcome.EXCLUDED
    return DetectionOutcome.NEW_ALERT if open_alert_id is None else DetectionOutcome.UPDATE_ALERT


def _refuse_closed_by_rule(alert: AlertState) -> None:
    if alert.close_reason == CloseReason.LEARNED:
        raise TransitionRefused(f"alert {alert.id} is learned; unlearn it to reopen it")
    if alert.close_reason == CloseReason.MUTED:
        raise TransitionRefused(f"alert {alert.id} is muted; unmute it to reopen it")


def _set_status(alert: AlertState, status: Status) -> Change | None:
    if status == alert.status:
        return None
    if alert.status == Status.CLOSED:
        _refuse_closed_by_rule(alert)
    close_reason = CloseReason.MANUAL if status == Status.CLOSED else None
    return Change(status, close_reason, alert.severity)


def _learn(alert: AlertState) -> Change | None:
    if not alert.learnable:
        raise TransitionRefused(
            f"alert {alert.id} cannot be learned: type {alert.type_id!r} is not learnable"
        )
    if alert.close_reason == CloseReason.LEARNED:
        return None
    if alert.close_reason == CloseReason.MUTED:
        raise TransitionRefused(f"alert {alert.id} is muted; unmute it before learning it")
    return Change(Status.CLOSED, CloseReason.LEARNED, alert.severity, RuleChange.ADD_LEARN)


def _unlearn(alert: AlertState) -> Change:
    if alert.close_reason != CloseReason.LEARNED:
        raise TransitionRefused(f"alert {alert.id} is not learned")
    return Change(Status.NEW, None, alert.severity, RuleChange.REMOVE_LEARN)


def _mute(alert: AlertState) -> Change | None:
    if not alert.mutable:
        raise TransitionRefused(
            f"alert {alert.id} cannot be muted: type {alert.type_id!r} is not mutable"
            + (" (learn it instead)" if alert.learnable else "")
        )
    if alert.close_reason == CloseReason.MUTED:
        return None
    if alert.close_reason == CloseReason.LEARNED:
        raise TransitionRefused(f"alert {alert.id} is learned; unlearn it before muting it")
    return Change(Status.CLOSED, CloseReason.MUTED, alert.severity, RuleChange.ADD_MUTE)


def _unmute(alert: AlertState) -> Change:
    if alert.close_reason != CloseReason.MUTED:
        raise TransitionRefused(f"alert {alert.id} is not muted")
    return Change(Status.NEW, None, alert.severity, RuleChange.REMOVE_MUTE)


def _set_severity(alert: AlertState, severity: str) -> Change | None:
    severity = Severity(severity).value
    if severity == alert.severity:
        return None
    return Change(alert.status, alert.close_reason, severity)


def _required(action: Action, value: str | None) -> str:
    if value is None:
        raise ValueError(f"{action.value} needs a value")
    return value


def plan(
    alert: AlertState, action: Action, origin: Origin, value: str | None = None
) -> Change | None:
    """Decide what ``action`` does to ``alert``; ``value`` is the new status or severity.

    Unlearn, mute and unmute are sensor-only (spec section 2): from central they are refused
    with that reason. Comments come from either side.
    """
    if origin == Origin.CENTRAL and action in SENSOR_ONLY:
        raise TransitionRefused(
            f"{action.value} is only possible on the sensor (spec: sensor only)"
        )
    match action:
        case Action.SET_STATUS:
            return _set_status(alert, Status(_required(action, value)))
        case Action.SET_SEVERITY:
            return _set_severity(alert, _required(action, value))
        case Action.LEARN:
            return _learn(alert)
        case Action.UNLEARN:
            return _unlearn(alert)
        case Action.MUTE:
            return _mute(alert)
        case Action.UNMUTE:
            return _unmute(alert)
        case Action.COMMENT:
            return Change(alert.status, alert.close_reason, alert.severity)
    raise TransitionRefused(f"unknown action {action!r}")  # pragma: no cover
