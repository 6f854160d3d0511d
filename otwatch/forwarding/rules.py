"""Forwarding rule filters: which alerts a rule forwards (pure; no I/O).

Every filter kind is optional; given ones are AND-ed, and a list matches when the alert's
value is one of its entries (case-insensitive). ``min_severity`` keeps that severity and
above (spec §5: "minimal alert level").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ENGINES", "SEVERITIES", "RuleFilter", "matches"]

SEVERITIES = ("low", "medium", "high")
ENGINES = (
    "policy_violation",
    "protocol_violation",
    "malware",
    "anomaly",
    "operational",
    "custom",
)
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

_Names = list[str]


class RuleFilter(BaseModel):
    """The alerts a rule forwards; an empty filter forwards every alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_severity: Literal["low", "medium", "high"] | None = None
    engines: _Names = Field(default_factory=list, max_length=16)
    categories: _Names = Field(default_factory=list, max_length=64)
    protocols: _Names = Field(default_factory=list, max_length=64)
    types: _Names = Field(default_factory=list, max_length=512)
    """Alert type ids (``port_scan_detected``)."""
    sensors: _Names = Field(default_factory=list, max_length=1024)
    sites: _Names = Field(default_factory=list, max_length=256)
    zones: _Names = Field(default_factory=list, max_length=256)
    learnable: bool | None = None

    @field_validator("engines")
    @classmethod
    def _known_engines(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v.lower() not in ENGINES]
        if unknown:
            raise ValueError(f"unknown engine {unknown[0]!r}; use one of {', '.join(ENGINES)}")
        return value

    @field_validator("engines", "categories", "protocols", "types", "sensors", "sites", "zones")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip().lower() for v in value if v.strip()]
        if any(len(v) > 200 for v in cleaned):
            raise ValueError("a filter value is longer than 200 characters")
        return cleaned


_LISTS = (
    ("engines", "engine"),
    ("categories", "category"),
    ("protocols", "protocol"),
    ("types", "type"),
    ("sensors", "sensor"),
    ("sites", "site"),
    ("zones", "zone"),
)


def matches(flt: RuleFilter, alert: dict[str, Any]) -> bool:
    """Whether ``alert`` (its JSON form) passes every filter the rule sets."""
    severity = _RANK.get(str(alert.get("severity")), -1)
    if flt.min_severity is not None and severity < _RANK[flt.min_severity]:
        return False
    for name, key in _LISTS:
        wanted = getattr(flt, name)
        if wanted and str(alert.get(key) or "").lower() not in wanted:
            return False
    return flt.learnable is None or bool(alert.get("learnable")) == flt.learnable
