"""Elastic Common Schema (ECS 8) document of an alert event, for JSON lines and webhooks."""

from __future__ import annotations

import json
from typing import Any

from otwatch.forwarding.events import (
    CEF_SEVERITY,
    MITRE_FRAMEWORK,
    PRODUCT,
    VERSION,
    ForwardEvent,
    canonical_ip,
)
from otwatch.timeutil import format_iso

__all__ = ["ECS_VERSION", "ecs_document", "format_ecs", "format_ecs_bytes"]

ECS_VERSION = "8.11.0"


def _ecs_mac(mac: Any) -> str | None:
    """ECS writes MAC addresses upper case with hyphens (``02-00-5E-00-53-01``)."""
    return str(mac).upper().replace(":", "-") if mac else None


def _endpoint(address: Any, mac: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if address:
        out["address"] = text = str(address)
        ip = canonical_ip(text)
        if ip is None:
            out["domain"] = text
        else:
            out["ip"] = ip
    if mac:
        out["mac"] = _ecs_mac(mac)
    return out


def ecs_document(event: ForwardEvent) -> dict[str, Any]:
    a = event.alert
    doc: dict[str, Any] = {
        "@timestamp": format_iso(event.ts_ns),
        "message": a.get("message"),
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection"],
            "type": ["info"] if event.kind in ("new", "test") else ["change"],
            "action": event.kind,
            "id": event.event_id,
            "severity": CEF_SEVERITY.get(str(a.get("severity")), 1),
            "module": PRODUCT,
            "dataset": f"{PRODUCT}.alert",
            "start": a.get("first_detection"),
            "end": a.get("last_detection"),
        },
        "rule": {"id": a.get("type"), "name": a.get("name"), "category": a.get("category")},
        "observer": {
            "name": a.get("sensor"),
            "type": "sensor",
            "vendor": PRODUCT,
            "product": PRODUCT,
            "version": VERSION,
        },
        "threat": {
            "framework": MITRE_FRAMEWORK,
            "tactic": {"name": list(a.get("tactics") or [])},
        },
        "otwatch": {"alert": a, "event_kind": event.kind, "change": event.change},
    }
    source = _endpoint(a.get("source_address"), a.get("source_mac"))
    destination = _endpoint(a.get("destination_address"), a.get("destination_mac"))
    if source:
        doc["source"] = source
    if destination:
        doc["destination"] = destination
    if a.get("protocol"):
        doc["network"] = {"protocol": str(a["protocol"]).lower()}
    doc["event"] = {k: v for k, v in doc["event"].items() if v is not None}
    if event.change is None:
        del doc["otwatch"]["change"]
    return doc


def format_ecs(event: ForwardEvent) -> str:
    """One JSON line (non-ASCII kept as UTF-8; line breaks in values are escaped by JSON)."""
    return json.dumps(ecs_document(event), ensure_ascii=False, separators=(",", ":"))


def format_ecs_bytes(event: ForwardEvent) -> bytes:
    return format_ecs(event).encode()
