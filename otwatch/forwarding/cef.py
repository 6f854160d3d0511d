"""ArcSight Common Event Format (CEF 0) body.

``CEF:0|otwatch|otwatch|VERSION|<type id>|<name>|<severity>|<extension>``. Header fields
escape ``\\`` and ``|``; extension values escape ``\\``, ``=`` and line breaks (``\\n``,
``\\r``), as the CEF specification requires. Line breaks cannot be escaped in a header field
and become spaces there.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from datetime import datetime
from typing import Any

from otwatch.forwarding.events import CEF_SEVERITY, PRODUCT, VERSION, ForwardEvent, without_controls

__all__ = ["CUSTOM_LABELS", "cef_header_escape", "cef_value_escape", "format_cef"]

CUSTOM_LABELS = {
    "cs1": ("sensor", "sensor"),
    "cs2": ("site", "site"),
    "cs3": ("zone", "zone"),
    "cs4": ("engine", "engine"),
    "cs5": ("status", "status"),
    "cs6": ("tactics", "tactics"),
}
"""CEF custom string key → (label, alert key)."""


_HEADER_SPECIAL = re.compile(r"[\x00-\x1f\x7f\\|]")
_VALUE_SPECIAL = re.compile(r"[\x00-\x1f\x7f\\=]")


def cef_header_escape(value: object) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    if not _HEADER_SPECIAL.search(text):
        return text
    text = without_controls(text)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def cef_value_escape(value: object) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    if not _VALUE_SPECIAL.search(text):  # the usual case: nothing to escape or drop
        return text
    text = without_controls(text)
    text = text.replace("\\", "\\\\").replace("=", "\\=")
    return text.replace("\r", "\\r").replace("\n", "\\n")


@functools.lru_cache(maxsize=8192)
def _ip(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return None


def _iso_ms(iso: str | None) -> int | None:
    """``2026-12-07T08:00:00.123456Z`` → milliseconds since the epoch."""
    if not iso:
        return None
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def extension_pairs(event: ForwardEvent) -> list[tuple[str, Any]]:
    """The extension's key/value pairs in order (None values are left out)."""
    a = event.alert
    pairs: list[tuple[str, Any]] = []
    for key, side in (("src", "source"), ("dst", "destination")):
        address = a.get(f"{side}_address")
        ip = _ip(address) if address else None
        pairs.append((key, ip) if ip else (f"{key[0]}host", address))
    pairs += [
        ("smac", a.get("source_mac")),
        ("dmac", a.get("destination_mac")),
        ("proto", a.get("protocol")),
        ("rt", event.ts_ns // 1_000_000),
        ("start", _iso_ms(a.get("first_detection"))),
        ("end", _iso_ms(a.get("last_detection"))),
        ("cat", a.get("category")),
        ("msg", a.get("message")),
        ("act", event.kind),
        ("externalId", a.get("id")),
        ("cnt", a.get("detections")),
        ("flexString1Label", "eventId"),
        ("flexString1", event.event_id),
    ]
    for key, (label, field) in CUSTOM_LABELS.items():
        value = a.get(field)
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        pairs += [(f"{key}Label", label), (key, value)]
    return [(k, v) for k, v in pairs if v is not None and v != ""]


def format_cef(event: ForwardEvent) -> str:
    a = event.alert
    header: list[Any] = [
        "CEF:0",
        PRODUCT,
        PRODUCT,
        VERSION,
        a.get("type"),
        a.get("name"),
        CEF_SEVERITY.get(str(a.get("severity")), 1),
    ]
    head = "|".join(h if i == 0 else cef_header_escape(h) for i, h in enumerate(header))
    ext = " ".join(f"{k}={cef_value_escape(v)}" for k, v in extension_pairs(event))
    return f"{head}|{ext}"
