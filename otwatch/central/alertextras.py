"""What an alert's details add for the portal: comments, tactics with their MITRE ATT&CK for
ICS ids, the entities (source and destination devices) and why Learn is refused.

- **Comments** are audit rows with action ``comment``: those made on the sensor, and those
  made at central (the command's audit row). The sensor's echo of a central comment (origin
  central, no command id) is the same comment and is left out.
- **Entities**: the address and MAC of each side, a name when the alert's parameters carry
  one (the sensor keeps no device inventory), and how many alerts central holds with that
  address on each side (counted up to ``_COUNT_CAP``, through the address indexes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from otwatch.alerts.lifecycle import Action, AlertState, Origin, TransitionRefused, plan
from otwatch.central.store.models import Alert, AuditEvent
from otwatch.timeutil import format_iso

__all__ = ["ATTACK_ICS_TACTICS", "comments", "entities", "learn_refusal", "tactics"]

ATTACK_ICS_TACTICS = {
    "Initial Access": "TA0108",
    "Execution": "TA0104",
    "Persistence": "TA0110",
    "Privilege Escalation": "TA0111",
    "Evasion": "TA0103",
    "Discovery": "TA0102",
    "Lateral Movement": "TA0109",
    "Collection": "TA0100",
    "Command and Control": "TA0101",
    "Inhibit Response Function": "TA0107",
    "Impair Process Control": "TA0106",
    "Impact": "TA0105",
}
"""Tactic name → its id in MITRE ATT&CK for ICS (https://attack.mitre.org/tactics/ics/)."""
_COUNT_CAP = 10_000
_NAME_KEYS = {
    "source": ("source_name", "src_name"),
    "destination": ("destination_name", "dst_name"),
}


def tactics(names: Iterable[str]) -> list[dict[str, str | None]]:
    return [{"id": ATTACK_ICS_TACTICS.get(name), "name": name} for name in names]


def comments(session: Session, alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    """Every comment on these alerts, oldest first: ``{author, text, at, origin, sensor}``."""
    keys = [(AuditEvent.sensor == a.sensor) & (AuditEvent.alert_id == a.alert_id) for a in alerts]
    rows = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "comment", or_(*keys))
        .order_by(AuditEvent.ts_ns, AuditEvent.id)
    )
    out = []
    for row in rows:
        detail = row.detail or {}
        if row.origin == Origin.CENTRAL.value and "command_id" not in detail:
            continue  # the sensor applying central's comment
        out.append(
            {
                "author": row.actor,
                "text": str(detail.get("text", "")),
                "at": format_iso(row.ts_ns),
                "origin": row.origin,
                "sensor": row.sensor,
            }
        )
    return out


def _count(session: Session, column: Any, value: str) -> int:
    inner = select(Alert.id).where(column == value).limit(_COUNT_CAP + 1).subquery()
    return int(session.scalar(select(func.count()).select_from(inner)) or 0)


def _entity(session: Session, alert: Alert, side: str) -> dict[str, Any] | None:
    address = getattr(alert, f"{side}_address")
    mac = getattr(alert, f"{side}_mac")
    if address is None and mac is None:
        return None
    params = alert.fields or {}
    name = next((str(params[k]) for k in _NAME_KEYS[side] if params.get(k)), None)
    known: dict[str, Any] = {}
    if address is not None:
        known = {
            "alerts_as_source": _count(session, Alert.source_address, address),
            "alerts_as_destination": _count(session, Alert.destination_address, address),
            "counts_capped_at": _COUNT_CAP,
        }
    return {"address": address, "mac": mac, "name": name, **known}


def entities(session: Session, alert: Alert) -> dict[str, Any]:
    return {side: _entity(session, alert, side) for side in ("source", "destination")}


def learn_refusal(alert: Alert) -> str | None:
    """Why Learn would be refused for this alert (the lifecycle's words), or None."""
    try:
        plan(AlertState.of(alert, alert.alert_id), Action.LEARN, Origin.CENTRAL)
    except (TransitionRefused, ValueError) as exc:
        return str(exc)
    return None
