"""Sensor tables of alert forwarding (columns in ``otwatch.forwarding.schema``)."""

from __future__ import annotations

from otwatch.agent.store.models import Base
from otwatch.forwarding.schema import RuleColumns, TargetColumns

__all__ = ["ForwardingRule", "ForwardingTarget"]


class ForwardingRule(RuleColumns, Base):
    pass


class ForwardingTarget(TargetColumns, Base):
    pass
