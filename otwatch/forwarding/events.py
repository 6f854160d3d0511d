"""What is forwarded: one alert event (new alert, later change, or a test message)."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from otwatch import __version__

__all__ = [
    "CEF_SEVERITY",
    "EVENT_KINDS",
    "MITRE_FRAMEWORK",
    "PRODUCT",
    "VERSION",
    "ForwardEvent",
    "canonical_ip",
    "event_uuid",
    "make_test_event",
    "without_controls",
]

PRODUCT = "otwatch"
VERSION = __version__
MITRE_FRAMEWORK = "MITRE ATT&CK for ICS"
EVENT_KINDS = ("new", "status", "severity", "closed", "test")
CEF_SEVERITY = {"low": 4, "medium": 8, "high": 10}
"""Spec §5: CEF severity 1/4/8/10 (Warning/Minor/Major/Critical); otwatch's Low, Medium and
High are the sensor's Minor, Major and Critical (spec §1)."""

_NAMESPACE = uuid.UUID("6f9d3c51-7a0e-4c53-9a55-0d5b8f2b7e11")
_NAMESPACE_BYTES = _NAMESPACE.bytes


_CONTROLS = {c: None for c in range(32) if chr(c) not in "\t\n\r"} | {127: None}
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def without_controls(value: object) -> str:
    """``value`` as text without control characters other than tab, CR and LF (which each
    format escapes its own way): a NUL or ESC from the wire never reaches a SIEM."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return text.translate(_CONTROLS) if _CONTROL.search(text) else text


@functools.lru_cache(maxsize=8192)
def canonical_ip(value: str) -> str | None:
    """``value`` as an IP address in its canonical text, or None when it is not one (a
    host name). Cached: a network's alerts repeat the same few addresses."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def event_uuid(instance: str, feed: str, row_id: int) -> str:
    """A stable event id: the same store row always gives the same id, so a receiver can
    drop the duplicates that at-least-once delivery may send. ``uuid.uuid5`` computed
    directly (a third of the time; the forwarder makes one per event)."""
    digest = bytearray(
        hashlib.sha1(
            _NAMESPACE_BYTES + f"{instance}/{feed}/{row_id}".encode(), usedforsecurity=False
        ).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class ForwardEvent:
    """One event for the targets; ``alert`` is the alert's JSON form (``otwatch.alerts.views``) with
    ``remediation`` and ``fields`` added."""

    event_id: str
    kind: str
    """``new``, ``status``, ``severity``, ``closed`` (a status change to closed) or ``test``."""
    alert: dict[str, Any]
    ts_ns: int
    """When it happened: the alert's first detection for ``new``, else the change's time."""
    change: dict[str, Any] | None = None
    """For updates: ``action``, ``actor``, ``origin``, ``before``, ``after``."""
    pos: tuple[int, int] = field(default=(0, 0), compare=False)
    """(audit row id, alert id) cursor position after this event; not part of the event."""

    @property
    def hostname(self) -> str:
        """RFC 5424 HOSTNAME: the id of the sensor that raised the alert."""
        return str(self.alert.get("sensor") or "-")


def make_test_event(sensor: str, now_ns: int) -> ForwardEvent:
    """A clearly marked test alert for ``otwatch forwarding test``."""
    alert: dict[str, Any] = {
        "id": "test",
        "type": "otwatch_forwarding_test",
        "name": "otwatch forwarding test message",
        "engine": "operational",
        "category": "Test",
        "severity": "low",
        "status": "new",
        "close_reason": None,
        "source_address": "192.0.2.1",
        "destination_address": "192.0.2.2",
        "source_mac": "02:00:00:00:00:01",
        "destination_mac": "02:00:00:00:00:02",
        "protocol": "test",
        "first_detection": None,
        "last_detection": None,
        "last_activity": None,
        "detections": 1,
        "sensor": sensor,
        "site": "",
        "zone": "",
        "tactics": [],
        "learnable": False,
        "message": "TEST: otwatch forwarding test message; not a real alert",
        "remediation": [],
        "fields": {"test": True},
    }
    return ForwardEvent(str(uuid.uuid4()), "test", alert, now_ns)
