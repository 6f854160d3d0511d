"""Triage: status, severity, learn and comments on alerts, in bulk (``admin`` role).

A change is applied to central's copy at once and becomes a command to the sensor that owns
the alert (``otwatch.central.commands``), audited with the caller's name (``token:NAME`` or
``user:NAME``); one result per id, like ``otwatch alerts`` on the sensor. Comments are
recorded centrally and sent to the sensor the same way (a step beyond the spec, for the
portal). Unlearn, mute and unmute are sensor-only (spec section 2): 409 with that reason.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from otwatch.alerts.views import QueryError
from otwatch.central import alertviews as views
from otwatch.central.api.auth import Caller
from otwatch.central.api.deps import Admin, Commander, CommanderDep, Reader, Store
from otwatch.central.commands import MAX_COMMENT, CommandRefused
from otwatch.central.store.db import CentralStore

__all__ = ["ActionResult", "ActionResults", "router"]

router = APIRouter(tags=["triage"])

MAX_IDS = 1000


class IdsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown key is a 422, not ignored

    ids: list[str] = Field(min_length=1, max_length=MAX_IDS, description="Central alert ids")


class StatusBody(IdsBody):
    status: Literal["new", "active", "closed"]


class SeverityBody(IdsBody):
    severity: Literal["low", "medium", "high"]


class CommentBody(IdsBody):
    text: str = Field(min_length=1, max_length=MAX_COMMENT)


class ActionResult(BaseModel):
    alert_id: str
    outcome: str = Field(description="applied, unchanged, refused or not_found")
    message: str
    commands: list[str] = []


class ActionResults(BaseModel):
    results: list[ActionResult]


@router.post("/alerts/status", response_model=ActionResults)
async def set_status(
    body: StatusBody, caller: Admin, store: Store, commander: CommanderDep
) -> ActionResults:
    """Change the status of alerts (new, active or closed)."""
    return await _act(store, commander, body.ids, "status", body.status, caller)


@router.post("/alerts/severity", response_model=ActionResults)
async def set_severity(
    body: SeverityBody, caller: Admin, store: Store, commander: CommanderDep
) -> ActionResults:
    """Change the severity of alerts (low, medium or high)."""
    return await _act(store, commander, body.ids, "severity", body.severity, caller)


@router.post("/alerts/learn", response_model=ActionResults)
async def learn(
    body: IdsBody, caller: Admin, store: Store, commander: CommanderDep
) -> ActionResults:
    """Learn alerts (learnable types only): close them and allow their traffic."""
    return await _act(store, commander, body.ids, "learn", None, caller)


@router.post("/alerts/comment", response_model=ActionResults)
async def comment(
    body: CommentBody, caller: Admin, store: Store, commander: CommanderDep
) -> ActionResults:
    """Comment on alerts: recorded centrally (``comments`` of the alert's details) and sent
    to the sensor, whose audit trail shows it from ``central:<actor>``."""
    return await _act(store, commander, body.ids, "comment", None, caller, text=body.text)


@router.post(
    "/alerts/{action}",
    status_code=409,
    responses={409: {"description": "Sensor-only action"}},
)
def sensor_only(
    action: Literal["unlearn", "mute", "unmute"],
    _caller: Reader,
    _body: Annotated[Any, Body()] = None,
) -> JSONResponse:
    """Unlearn, mute and unmute exist on the sensor only (spec section 2)."""
    return JSONResponse(
        {
            "detail": f"{action} is only possible on the sensor (spec: sensor only); "
            f"run 'otwatch alerts {action}' on the sensor that detected the alert"
        },
        status_code=409,
    )


async def _act(
    store: CentralStore,
    commander: Commander,
    ids: list[str],
    kind: str,
    value: str | None,
    caller: Caller,
    **extra: Any,
) -> ActionResults:
    results = []
    for text in dict.fromkeys(ids):
        results.append(await _act_one(store, commander, text, kind, value, caller, extra))
    return ActionResults(results=results)


def _targets(store: CentralStore, text: str) -> list[tuple[str, int]] | None:
    """(sensor, alert id) of every sensor's copy of a central alert; None if unknown."""
    with store.session() as s:
        alert = views.find_alert(s, text)
        if alert is None:
            return None
        return [(m.sensor, m.alert_id) for m in views.members_of(s, alert)]


async def _act_one(
    store: CentralStore,
    commander: Commander,
    text: str,
    kind: str,
    value: str | None,
    caller: Caller,
    extra: dict[str, Any],
) -> ActionResult:
    try:
        targets = await run_in_threadpool(_targets, store, text)
    except QueryError as exc:
        return ActionResult(alert_id=text, outcome="not_found", message=str(exc))
    if targets is None:
        return ActionResult(
            alert_id=text, outcome="not_found", message=f"alert {text} does not exist"
        )
    queued, unchanged, refused = [], [], []
    commands = []
    for sensor, alert_id in targets:
        try:
            result = await commander.issue_command(
                sensor, kind, actor=caller.actor, alert_id=alert_id, value=value, **extra
            )
        except CommandRefused as exc:
            refused.append(str(exc))
            continue
        if result.outcome == "queued":
            queued.append(sensor)
            if result.command_id:
                commands.append(result.command_id)
        else:
            unchanged.append(result.message)
    if queued:
        what = f"{kind} {value}" if value else kind
        message = f"alert {text}: {what} applied centrally, sent to sensor " + ", ".join(queued)
        if refused:
            message += f" (refused for the rest: {refused[0]})"
        return ActionResult(alert_id=text, outcome="applied", message=message, commands=commands)
    if refused:
        return ActionResult(alert_id=text, outcome="refused", message=refused[0])
    message = unchanged[0] if unchanged else f"alert {text} unchanged"
    return ActionResult(alert_id=text, outcome="unchanged", message=message)
