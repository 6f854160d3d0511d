"""Plain-text body (Defender's "Text" layout, spec §5) on one line."""

from __future__ import annotations

from otwatch.forwarding.events import ForwardEvent, without_controls

__all__ = ["format_text"]


def _clean(value: object) -> str:
    """One line: backslashes and line breaks escaped, other control characters dropped."""
    text = without_controls(value)
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def format_text(event: ForwardEvent) -> str:
    a = event.alert
    parts = [
        ("Sensor", a.get("sensor")),
        ("Alert", a.get("name")),
        ("Type", a.get("engine")),
        ("Severity", a.get("severity")),
        ("Status", a.get("status")),
        ("Source", a.get("source_mac")),
        ("Source IP", a.get("source_address")),
        ("Protocol", a.get("protocol")),
        ("Destination", a.get("destination_mac")),
        ("Destination IP", a.get("destination_address")),
        ("Message", a.get("message")),
        ("Alert Group", a.get("category")),
        ("UUID", a.get("id")),
        ("Event", f"{event.kind} {event.event_id}"),
    ]
    return "; ".join(f"{key}: {_clean(value) or 'N/A'}" for key, value in parts)
