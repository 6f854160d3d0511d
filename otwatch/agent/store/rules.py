"""Load and save custom alert rules and their events (the pipeline and the CLI share these)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from otwatch.agent.store.models_rules import CustomRule, CustomRuleEvent

__all__ = ["MAX_RULE_EVENTS", "custom_rule_dict", "load_custom_rules", "save_rule_events"]

MAX_RULE_EVENTS = 100_000
"""Rule events kept; the oldest go first."""


def custom_rule_dict(rule: CustomRule) -> dict[str, Any]:
    """A stored rule as the raw mapping ``rules.custom.validate_rule`` accepts."""
    return {
        "id": rule.id,
        "name": rule.name,
        "enabled": rule.enabled,
        "protocol": rule.protocol,
        "sources": list(rule.sources),
        "destinations": list(rule.destinations),
        "conditions": list(rule.conditions),
        "days": list(rule.days),
        "time_from": rule.time_from,
        "time_to": rule.time_to,
        "action": rule.action,
        "severity": rule.severity,
        "message": rule.message,
        "created_ns": rule.created_ns,
        "updated_ns": rule.updated_ns,
        "actor": rule.actor,
    }


def load_custom_rules(session: Session) -> list[dict[str, Any]]:
    return [
        custom_rule_dict(r) for r in session.scalars(select(CustomRule).order_by(CustomRule.id))
    ]


def save_rule_events(session: Session, events: Iterable[Mapping[str, Any]]) -> int:
    rows = [
        {
            "rule_id": e.get("rule_id"),
            "rule_name": e["rule_name"],
            "ts_ns": e["ts_ns"],
            "severity": e["severity"],
            "message": e["message"],
            "source_address": e.get("source_address"),
            "destination_address": e.get("destination_address"),
            "protocol": e.get("protocol"),
        }
        for e in events
    ]
    if not rows:
        return 0
    session.execute(insert(CustomRuleEvent), rows)
    newest = session.scalar(select(func.max(CustomRuleEvent.id))) or 0
    if newest > MAX_RULE_EVENTS:
        session.execute(
            delete(CustomRuleEvent).where(CustomRuleEvent.id <= newest - MAX_RULE_EVENTS)
        )
    return len(rows)
