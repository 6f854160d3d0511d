"""The alert catalog: every alert type the sensor knows, loaded from ``alert_types.toml``.

The TOML file is the one reviewable place where an alert type's name, engine, category,
severity, MITRE ATT&CK for ICS tactics, learn/mute rules, de-duplication key and remediation
live. Detectors refer to types by ``id`` only.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from otwatch.errors import OtwatchError

__all__ = [
    "CATEGORIES",
    "TACTICS",
    "AlertType",
    "Catalog",
    "CatalogError",
    "Engine",
    "Severity",
    "load_catalog",
]


class CatalogError(OtwatchError):
    """The catalog file is malformed or names an unknown type."""


class Engine(StrEnum):
    POLICY_VIOLATION = "policy_violation"
    PROTOCOL_VIOLATION = "protocol_violation"
    MALWARE = "malware"
    ANOMALY = "anomaly"
    OPERATIONAL = "operational"
    CUSTOM = "custom"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


CATEGORIES = frozenset(
    {
        "Abnormal Communication Behavior",
        "Abnormal HTTP Communication Behavior",
        "Authentication",
        "Backup",
        "Bandwidth Anomalies",
        "Buffer overflow",
        "Command Failures",
        "Configuration changes",
        "Custom Alerts",
        "Discovery",
        "Firmware change",
        "Illegal commands",
        "Internet Access",
        "Operation Failures",
        "Operational issues",
        "Programming",
        "Remote access",
        "Restart/Stop Commands",
        "Scan",
        "Sensor traffic",
        "Suspicion of malicious activity",
        "Suspicion of Malware",
        "Unauthorized Communication Behavior",
        "Unresponsive",
    }
)

TACTICS = frozenset(
    {
        "Collection",
        "Command and Control",
        "Discovery",
        "Evasion",
        "Execution",
        "Impact",
        "Impair Process Control",
        "Inhibit Response Function",
        "Initial Access",
        "Lateral Movement",
        "Persistence",
        "Privilege Escalation",
    }
)

#: Fields a de-duplication key may name besides detector-specific parameters.
STANDARD_KEY_FIELDS = frozenset(
    {"source_address", "destination_address", "source_mac", "destination_mac", "protocol"}
)


@dataclass(frozen=True, slots=True)
class AlertType:
    """One catalog entry."""

    id: str
    name: str
    engine: Engine
    category: str
    severity: Severity
    tactics: tuple[str, ...]
    learnable: bool
    mutable: bool
    enabled_by_default: bool
    aggregatable: bool
    trigger: str
    dedup_key: tuple[str, ...]
    """Detection fields whose values identify 'the same traffic' for this type."""
    remediation: tuple[str, ...]


class Catalog(Mapping[str, AlertType]):
    """Alert types by id, in file order."""

    def __init__(self, types: list[AlertType]) -> None:
        self._types: dict[str, AlertType] = {}
        for alert_type in types:
            if alert_type.id in self._types:
                raise CatalogError(f"alert type {alert_type.id!r} is defined twice")
            self._types[alert_type.id] = alert_type

    def __getitem__(self, type_id: str) -> AlertType:
        try:
            return self._types[type_id]
        except KeyError:
            raise CatalogError(f"unknown alert type {type_id!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def by_name(self, name: str) -> AlertType:
        for alert_type in self._types.values():
            if alert_type.name == name:
                return alert_type
        raise CatalogError(f"unknown alert name {name!r}")


_REQUIRED = {
    "id": str,
    "name": str,
    "engine": str,
    "category": str,
    "severity": str,
    "tactics": list,
    "learnable": bool,
    "mutable": bool,
    "enabled_by_default": bool,
    "aggregatable": bool,
    "trigger": str,
    "dedup_key": list,
    "remediation": list,
}


def _parse_entry(index: int, raw: dict[str, Any]) -> AlertType:
    where = f"alert #{index + 1} ({raw.get('id', '?')})"
    for key, kind in _REQUIRED.items():
        if key not in raw:
            raise CatalogError(f"{where}: missing key {key!r}")
        if not isinstance(raw[key], kind):
            raise CatalogError(f"{where}: {key!r} must be a {kind.__name__}")
    unknown = set(raw) - set(_REQUIRED)
    if unknown:
        raise CatalogError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        engine, severity = Engine(raw["engine"]), Severity(raw["severity"])
    except ValueError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    if raw["category"] not in CATEGORIES:
        raise CatalogError(f"{where}: unknown category {raw['category']!r}")
    bad_tactics = set(raw["tactics"]) - TACTICS
    if bad_tactics:
        raise CatalogError(f"{where}: unknown tactics {sorted(bad_tactics)}")
    if not raw["dedup_key"] or not raw["remediation"]:
        raise CatalogError(f"{where}: dedup_key and remediation must not be empty")
    return AlertType(
        id=raw["id"],
        name=raw["name"],
        engine=engine,
        category=raw["category"],
        severity=severity,
        tactics=tuple(raw["tactics"]),
        learnable=raw["learnable"],
        mutable=raw["mutable"],
        enabled_by_default=raw["enabled_by_default"],
        aggregatable=raw["aggregatable"],
        trigger=raw["trigger"],
        dedup_key=tuple(raw["dedup_key"]),
        remediation=tuple(raw["remediation"]),
    )


def parse_catalog(text: str) -> Catalog:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"alert catalog is not valid TOML: {exc}") from None
    entries = data.get("alert", [])
    return Catalog([_parse_entry(i, raw) for i, raw in enumerate(entries)])


@cache
def load_catalog(path: Path | None = None) -> Catalog:
    """The packaged catalog (or the one at ``path``), parsed once per process."""
    if path is None:
        text = resources.files(__package__).joinpath("alert_types.toml").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return parse_catalog(text)
