"""Alerts as forwarding reads them: the columns it needs as plain Core rows, turned into the
alert's JSON form (``otwatch.alerts.views.alert_to_dict`` plus ``remediation`` and
``fields``) without ORM objects.

JSON columns are read as text and decoded here: ``tactics`` through a cache (few distinct
values), ``remediation`` and ``fields`` only when a target sends them (ECS: JSON lines,
webhooks, syslog ``json``). Reading and decoding were half of the forwarder's time per
event; the output is the same (``tests/unit/forwarding/test_output_pinned.py``).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from sqlalchemy import Text, null, type_coerce

from otwatch.timeutil import format_iso

__all__ = ["ALERT_WIDTH", "FIRST_NS", "alert_json", "alert_select_columns"]

_PLAIN = (
    "id",
    "type_id",
    "name",
    "engine",
    "category",
    "severity",
    "status",
    "close_reason",
    "source_address",
    "destination_address",
    "source_mac",
    "destination_mac",
    "protocol",
    "first_detection_ns",
    "last_detection_ns",
    "last_activity_ns",
    "detections",
    "sensor",
    "site",
    "zone",
    "tactics",
    "learnable",
    "message",
    "remediation",
    "fields",
    "alert_id",
)
_JSON = frozenset({"tactics", "remediation", "fields"})
ALERT_WIDTH = len(_PLAIN)
"""Columns ``alert_select_columns`` gives, in this order."""
FIRST_NS = _PLAIN.index("first_detection_ns")
"""Where the first detection time is among them."""


def alert_select_columns(table: Any, detail: bool) -> list[Any]:
    """The alert columns to select (JSON ones as text; ``remediation`` and ``fields`` NULL
    without ``detail``); a sensor's alerts have no ``alert_id``: its place holds ``id``."""
    out: list[Any] = []
    for name in _PLAIN:
        if not detail and name in ("remediation", "fields"):
            out.append(null())
            continue
        column = table.c.get(name, table.c.id)
        out.append(type_coerce(column, Text) if name in _JSON else column)
    return out


@functools.lru_cache(maxsize=1024)
def _tactics(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


@functools.lru_cache(maxsize=1024)
def _remediation(text: str) -> tuple[Any, ...]:
    """The catalog's remediation steps: the same few texts for many alerts."""
    return tuple(json.loads(text) or ())


def _json(value: Any) -> Any:
    """A JSON column as selected: text (SQLite) or already decoded (PostgreSQL drivers)."""
    return json.loads(value) if isinstance(value, str) else value


def alert_json(row: Any, start: int, central: bool, detail: bool) -> dict[str, Any]:
    """The alert's JSON form from ``row[start : start + ALERT_WIDTH]``; ``remediation`` and
    ``fields`` only with ``detail``. Keys in ``alert_to_dict``'s order."""
    (
        alert_id,
        type_id,
        name,
        engine,
        category,
        severity,
        status,
        close_reason,
        source_address,
        destination_address,
        source_mac,
        destination_mac,
        protocol,
        first_ns,
        last_ns,
        activity_ns,
        detections,
        sensor,
        site,
        zone,
        tactics,
        learnable,
        message,
        remediation,
        fields,
        sensor_alert_id,
    ) = row[start : start + ALERT_WIDTH]
    tactic_list = list(_tactics(tactics)) if isinstance(tactics, str) else list(tactics or ())
    out: dict[str, Any] = {
        "id": f"{sensor_alert_id}-{sensor}" if central else alert_id,
        "type": type_id,
        "name": name,
        "engine": engine,
        "category": category,
        "severity": severity,
        "status": status,
        "close_reason": close_reason,
        "source_address": source_address,
        "destination_address": destination_address,
        "source_mac": source_mac,
        "destination_mac": destination_mac,
        "protocol": protocol,
        "first_detection": format_iso(first_ns),
        "last_detection": format_iso(last_ns),
        "last_activity": format_iso(activity_ns),
        "detections": detections,
        "sensor": sensor,
        "site": site,
        "zone": zone,
        "tactics": tactic_list,
        "learnable": bool(learnable),
        "message": message,
    }
    if detail:
        out["remediation"] = (
            list(_remediation(remediation))
            if isinstance(remediation, str)
            else list(remediation or [])
        )
        out["fields"] = dict(_json(fields) or {})
    return out
