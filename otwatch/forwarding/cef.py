"""ArcSight Common Event Format (CEF 0) body.

``CEF:0|otwatch|otwatch|VERSION|<type id>|<name>|<severity>|<extension>``. Header fields
escape ``\\`` and ``|``; extension values escape ``\\``, ``=`` and line breaks (``\\n``,
``\\r``), as the CEF specification requires. Line breaks cannot be escaped in a header field
and become spaces there.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from otwatch.forwarding.events import (
    CEF_SEVERITY,
    PRODUCT,
    VERSION,
    ForwardEvent,
    canonical_ip,
    without_controls,
)

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


def _ip(value: Any) -> str | None:
    return canonical_ip(str(value))


def _iso_ms(iso: str | None) -> int | None:
    """``2026-12-07T08:00:00.123456Z`` → milliseconds since the epoch."""
    if not iso:
        return None
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def extension_pairs(event: ForwardEvent) -> list[tuple[str, Any]]:
    """The extension's key/value pairs in order (None values are left out)."""
    a = event.alert
    get = a.get
    source, destination = get("source_address"), get("destination_address")
    ip = _ip(source) if source else None
    pairs: list[tuple[str, Any]] = [("src", ip) if ip else ("shost", source)]
    ip = _ip(destination) if destination else None
    pairs.append(("dst", ip) if ip else ("dhost", destination))
    pairs += (
        ("smac", get("source_mac")),
        ("dmac", get("destination_mac")),
        ("proto", get("protocol")),
        ("rt", event.ts_ns // 1_000_000),
        ("start", _iso_ms(get("first_detection"))),
        ("end", _iso_ms(get("last_detection"))),
        ("cat", get("category")),
        ("msg", get("message")),
        ("act", event.kind),
        ("externalId", get("id")),
        ("cnt", get("detections")),
        ("flexString1Label", "eventId"),
        ("flexString1", event.event_id),
    )
    for key, label, value in _custom(a):
        pairs += ((f"{key}Label", label), (key, value))
    return [(k, v) for k, v in pairs if v is not None and v != ""]


def _custom(a: dict[str, Any]) -> list[tuple[str, str, Any]]:
    out = []
    for key, (label, field) in CUSTOM_LABELS.items():
        value = a.get(field)
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        out.append((key, label, value))
    return out


_PREFIX = "|".join(["CEF:0", *(cef_header_escape(h) for h in (PRODUCT, PRODUCT, VERSION))])
_NO_SPECIAL_BUT_EQ = re.compile(r"[\x00-\x1f\x7f\\]")
_CUSTOM = tuple(
    (f"{key}Label={label}", f"{key}=", field) for key, (label, field) in CUSTOM_LABELS.items()
)


def _put(items: list[str], key: str, value: Any) -> None:
    if value is not None and value != "":
        items.append(f"{key}{value}")


def _unescaped_extension(event: ForwardEvent) -> list[str]:
    """``extension_pairs`` as ``key=value`` strings, values not escaped (the fast path)."""
    a = event.alert
    get = a.get
    items: list[str] = []
    for side, ip_key, host_key in (
        ("source_address", "src=", "shost="),
        ("destination_address", "dst=", "dhost="),
    ):
        address = get(side)
        if address:
            ip = _ip(address)
            items.append(f"{ip_key}{ip}" if ip else f"{host_key}{address}")
    _put(items, "smac=", get("source_mac"))
    _put(items, "dmac=", get("destination_mac"))
    _put(items, "proto=", get("protocol"))
    items.append(f"rt={event.ts_ns // 1_000_000}")
    _put(items, "start=", _iso_ms(get("first_detection")))
    _put(items, "end=", _iso_ms(get("last_detection")))
    _put(items, "cat=", get("category"))
    _put(items, "msg=", get("message"))
    _put(items, "act=", event.kind)
    _put(items, "externalId=", get("id"))
    _put(items, "cnt=", get("detections"))
    items.append("flexString1Label=eventId")
    _put(items, "flexString1=", event.event_id)
    for label, key, field in _CUSTOM:
        items.append(label)
        value = get(field)
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        _put(items, key, value)
    return items


def format_cef(event: ForwardEvent) -> str:
    a = event.alert
    head = (
        f"{_PREFIX}|{cef_header_escape(a.get('type'))}|{cef_header_escape(a.get('name'))}"
        f"|{CEF_SEVERITY.get(str(a.get('severity')), 1)}"
    )
    items = _unescaped_extension(event)
    ext = " ".join(items)
    # One scan for the usual case: no value holds a character to escape (each item has
    # exactly one ``=``); otherwise escape value by value.
    if ext.count("=") != len(items) or _NO_SPECIAL_BUT_EQ.search(ext):
        ext = " ".join([f"{k}={cef_value_escape(v)}" for k, v in extension_pairs(event)])
    return f"{head}|{ext}"
