"""Exhaustive tests of the pure lifecycle rules (spec section 2)."""

from __future__ import annotations

import itertools

import pytest

from otwatch.alerts.lifecycle import (
    Action,
    AlertState,
    CloseReason,
    DetectionOutcome,
    Origin,
    RuleChange,
    Status,
    TransitionRefused,
    on_detection,
    plan,
)


def state(
    status: Status = Status.NEW,
    close_reason: CloseReason | None = None,
    learnable: bool = True,
    mutable: bool = True,
    severity: str = "medium",
) -> AlertState:
    return AlertState(1, "t", status, close_reason, severity, learnable, mutable)


ALL_STATES = [
    state(Status.NEW),
    state(Status.ACTIVE),
    state(Status.CLOSED, CloseReason.MANUAL),
    state(Status.CLOSED, CloseReason.LEARNED),
    state(Status.CLOSED, CloseReason.MUTED),
    state(Status.CLOSED, CloseReason.AUTO),
]


@pytest.mark.parametrize(
    ("learned", "muted", "excluded", "open_id", "expected"),
    [
        (True, True, True, 5, DetectionOutcome.LEARNED),
        (False, True, True, 5, DetectionOutcome.MUTED),
        (False, False, True, 5, DetectionOutcome.EXCLUDED),
        (False, False, False, 5, DetectionOutcome.UPDATE_ALERT),
        (False, False, False, None, DetectionOutcome.NEW_ALERT),
    ],
)
def test_detection_order_learned_muted_excluded_dedup(learned, muted, excluded, open_id, expected):
    assert on_detection(open_id, learned=learned, muted=muted, excluded=excluded) is expected


@pytest.mark.parametrize(("alert", "target"), list(itertools.product(ALL_STATES, list(Status))))
def test_set_status_matrix(alert: AlertState, target: Status):
    if alert.status == target:
        assert plan(alert, Action.SET_STATUS, Origin.SENSOR, target) is None
        return
    if alert.close_reason in (CloseReason.LEARNED, CloseReason.MUTED):
        with pytest.raises(TransitionRefused, match="unlearn|unmute"):
            plan(alert, Action.SET_STATUS, Origin.SENSOR, target)
        return
    change = plan(alert, Action.SET_STATUS, Origin.SENSOR, target)
    assert change is not None and change.status == target and change.rule is None
    assert change.close_reason == (CloseReason.MANUAL if target == Status.CLOSED else None)


def test_unknown_status_is_refused_as_value_error():
    with pytest.raises(ValueError):
        plan(state(), Action.SET_STATUS, Origin.SENSOR, "resolved")


@pytest.mark.parametrize("alert", ALL_STATES)
def test_learn(alert: AlertState):
    if alert.close_reason == CloseReason.LEARNED:
        assert plan(alert, Action.LEARN, Origin.SENSOR) is None
    elif alert.close_reason == CloseReason.MUTED:
        with pytest.raises(TransitionRefused, match="muted"):
            plan(alert, Action.LEARN, Origin.SENSOR)
    else:
        change = plan(alert, Action.LEARN, Origin.CENTRAL)
        assert change == change.__class__(
            Status.CLOSED, CloseReason.LEARNED, "medium", RuleChange.ADD_LEARN
        )


def test_learn_refused_for_non_learnable_type_with_reason():
    with pytest.raises(TransitionRefused, match="not learnable"):
        plan(state(learnable=False), Action.LEARN, Origin.SENSOR)


@pytest.mark.parametrize("alert", ALL_STATES)
def test_unlearn_returns_to_new_only_when_learned(alert: AlertState):
    if alert.close_reason == CloseReason.LEARNED:
        change = plan(alert, Action.UNLEARN, Origin.SENSOR)
        assert change.status == Status.NEW and change.close_reason is None
        assert change.rule == RuleChange.REMOVE_LEARN
    else:
        with pytest.raises(TransitionRefused, match="not learned"):
            plan(alert, Action.UNLEARN, Origin.SENSOR)


@pytest.mark.parametrize("alert", ALL_STATES)
def test_mute_and_unmute(alert: AlertState):
    if alert.close_reason == CloseReason.MUTED:
        assert plan(alert, Action.MUTE, Origin.SENSOR) is None
        change = plan(alert, Action.UNMUTE, Origin.SENSOR)
        assert (change.status, change.rule) == (Status.NEW, RuleChange.REMOVE_MUTE)
    elif alert.close_reason == CloseReason.LEARNED:
        with pytest.raises(TransitionRefused, match="learned"):
            plan(alert, Action.MUTE, Origin.SENSOR)
    else:
        change = plan(alert, Action.MUTE, Origin.SENSOR)
        assert (change.status, change.close_reason, change.rule) == (
            Status.CLOSED,
            CloseReason.MUTED,
            RuleChange.ADD_MUTE,
        )
        with pytest.raises(TransitionRefused, match="not muted"):
            plan(alert, Action.UNMUTE, Origin.SENSOR)


def test_mute_refused_for_non_mutable_type():
    with pytest.raises(TransitionRefused, match="not mutable.*learn it instead"):
        plan(state(mutable=False), Action.MUTE, Origin.SENSOR)


@pytest.mark.parametrize("action", [Action.UNLEARN, Action.MUTE, Action.UNMUTE])
def test_sensor_only_actions_refused_from_central(action: Action):
    learned = state(Status.CLOSED, CloseReason.LEARNED)
    with pytest.raises(TransitionRefused, match="only possible on the sensor"):
        plan(learned, action, Origin.CENTRAL)


def test_comments_are_allowed_from_central_and_change_nothing():
    learned = state(Status.CLOSED, CloseReason.LEARNED)
    change = plan(learned, Action.COMMENT, Origin.CENTRAL, "checked with ops")
    assert (change.status, change.close_reason) == (Status.CLOSED, CloseReason.LEARNED)
    assert change.rule is None and not change.reopens


def test_severity_change_keeps_status():
    alert = state(Status.CLOSED, CloseReason.LEARNED)
    change = plan(alert, Action.SET_SEVERITY, Origin.CENTRAL, "high")
    assert (change.status, change.close_reason, change.severity) == (
        Status.CLOSED,
        CloseReason.LEARNED,
        "high",
    )
    assert plan(alert, Action.SET_SEVERITY, Origin.SENSOR, "medium") is None


def test_unknown_severity_is_refused_as_value_error():
    with pytest.raises(ValueError):
        plan(state(), Action.SET_SEVERITY, Origin.SENSOR, "critical")
