"""RFC 5424 syslog messages and their transport framing (RFC 6587 octet counting).

``<PRI>1 TIMESTAMP HOSTNAME otwatch - MSGID [otwatch@32473 …] BODY``: facility user,
severity alert (Defender forwards as ``User.Alert``), HOSTNAME the sensor id, MSGID per
event kind, structured data with the alert and event ids. 32473 is the private enterprise
number RFC 5612 reserves for documentation; a site may set its own (``sd_id``).
"""

from __future__ import annotations

import functools
import re

from otwatch.forwarding.events import PRODUCT, ForwardEvent
from otwatch.timeutil import format_iso

__all__ = ["MSGIDS", "PRI", "SD_ID", "frame_octet_counted", "syslog_message"]

PRI = 1 * 8 + 1
"""facility user (1), severity alert (1)."""
SD_ID = "otwatch@32473"
MSGIDS = {
    "new": "ALERT_NEW",
    "status": "ALERT_STATUS",
    "severity": "ALERT_SEVERITY",
    "closed": "ALERT_CLOSED",
    "test": "ALERT_TEST",
}


@functools.lru_cache(maxsize=4096)
def _header_field(value: str, limit: int) -> str:
    """PRINTUSASCII without spaces, at most ``limit`` characters; ``-`` when empty."""
    text = "".join(ch for ch in value if "!" <= ch <= "~")[:limit]
    return text or "-"


_SD_SPECIAL = re.compile(r'["\\\]]')


def _sd_escape(value: object) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    if not _SD_SPECIAL.search(text):
        return text
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


_PREFIXES = {kind: f"{PRODUCT} - {msgid} " for kind, msgid in MSGIDS.items()}


def syslog_message(event: ForwardEvent, body: str, sd_id: str = SD_ID) -> bytes:
    a = event.alert
    params = [
        (name, value)
        for name, value in (
            ("alertId", a.get("id")),
            ("eventId", event.event_id),
            ("kind", event.kind),
            ("severity", a.get("severity")),
            ("sensor", a.get("sensor")),
        )
        if value is not None
    ]
    sd = " ".join([f'{name}="{value}"' for name, value in params])
    # One scan for the usual case: no value holds ``"``, ``\\`` or ``]`` (each parameter
    # adds exactly two ``"``); otherwise escape value by value.
    if sd.count('"') != 2 * len(params) or "\\" in sd or "]" in sd:
        sd = " ".join([f'{name}="{_sd_escape(value)}"' for name, value in params])
    prefix = _PREFIXES.get(event.kind) or f"{PRODUCT} - ALERT "
    header = (
        f"<{PRI}>1 {format_iso(event.ts_ns)} {_header_field(event.hostname, 255)} "
        f"{prefix}[{sd_id} {sd}] "
    )
    return header.encode() + body.encode("utf-8", "replace")


def frame_octet_counted(message: bytes) -> bytes:
    """RFC 6587 §3.4.1: ``MSG-LEN SP SYSLOG-MSG``."""
    return b"%d %s" % (len(message), message)
