"""IBM QRadar Log Event Extended Format 2.0 body.

``LEEF:2.0|otwatch|otwatch|VERSION|<type id>|x09|key=value<TAB>…``: attributes are separated
by a tab (declared in the header). LEEF has no escape rule of its own; otwatch escapes
``\\`` as ``\\\\`` and tab, CR and LF as ``\\t``, ``\\r``, ``\\n`` in values so that no value
can split an attribute, and ``|`` and ``\\`` in header fields with a backslash.
"""

from __future__ import annotations

import re

from otwatch.forwarding.cef import extension_pairs
from otwatch.forwarding.events import CEF_SEVERITY, PRODUCT, VERSION, ForwardEvent, without_controls
from otwatch.timeutil import format_iso

__all__ = ["LEEF_DELIMITER", "format_leef", "leef_value_escape"]

LEEF_DELIMITER = "\t"

_KEYS = {
    "src": "src",
    "dst": "dst",
    "shost": "srcHost",
    "dhost": "dstHost",
    "smac": "srcMAC",
    "dmac": "dstMAC",
    "proto": "proto",
    "cat": "cat",
    "msg": "msg",
    "externalId": "alertId",
    "cnt": "detections",
    "act": "kind",
}


_VALUE_SPECIAL = re.compile(r"[\x00-\x1f\x7f\\]")


def leef_value_escape(value: object) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    if not _VALUE_SPECIAL.search(text):
        return text
    text = without_controls(text)
    text = text.replace("\\", "\\\\").replace("\t", "\\t")
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _header_escape(value: object) -> str:
    text = without_controls(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def format_leef(event: ForwardEvent) -> str:
    a = event.alert
    pairs = [(_KEYS[k], v) for k, v in extension_pairs(event) if k in _KEYS]
    pairs += [
        ("devTime", format_iso(event.ts_ns)[:23] + "Z"),
        ("devTimeFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSX"),
        ("sev", CEF_SEVERITY.get(str(a.get("severity")), 1)),
        ("name", a.get("name")),
        ("severity", a.get("severity")),
        ("engine", a.get("engine")),
        ("status", a.get("status")),
        ("sensor", a.get("sensor")),
        ("site", a.get("site")),
        ("zone", a.get("zone")),
        ("tactics", ",".join(a.get("tactics") or [])),
        ("eventId", event.event_id),
    ]
    head = "|".join(["LEEF:2.0", PRODUCT, PRODUCT, VERSION, _header_escape(a.get("type")), "x09"])
    body = LEEF_DELIMITER.join(
        f"{k}={leef_value_escape(v)}" for k, v in pairs if v is not None and v != ""
    )
    return f"{head}|{body}"
