"""Tables of user-written detection rules: custom alert rules and the events they record.

Exclusion rules live in ``models.ExclusionRule`` (revision 0003 adds its engine, sensor,
MAC, direction and ticket columns).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from otwatch.agent.store.models import Base, PrimaryKey

__all__ = ["CustomRule", "CustomRuleEvent"]


class CustomRule(Base):
    """A custom alert rule (spec section 5); fields as ``rules.custom.validate_rule`` takes."""

    __tablename__ = "custom_rules"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    protocol: Mapped[str] = mapped_column(String(32))
    sources: Mapped[list[str]]
    """IP addresses, CIDR subnets or MAC addresses; empty matches any source."""
    destinations: Mapped[list[str]]
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """AND-ed ``{"field", "op", "value"}`` conditions."""
    days: Mapped[list[str]]
    """Weekdays (mon..sun) when the rule applies; empty means every day."""
    time_from: Mapped[str | None] = mapped_column(String(5))
    time_to: Mapped[str | None] = mapped_column(String(5))
    action: Mapped[str] = mapped_column(String(8))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    updated_ns: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))


class CustomRuleEvent(Base):
    """What a rule with action ``event`` recorded (an event-timeline item, not an alert)."""

    __tablename__ = "custom_rule_events"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    rule_id: Mapped[int | None] = mapped_column(BigInteger)
    rule_name: Mapped[str] = mapped_column(String(128))
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    source_address: Mapped[str | None] = mapped_column(String(64))
    destination_address: Mapped[str | None] = mapped_column(String(64))
    protocol: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index(None, "ts_ns"), Index(None, "rule_id"))
