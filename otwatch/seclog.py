"""Security events: what a peer or a client tried that otwatch refused, clamped or ignored.

One logger, ``otwatch.security``, so that an operator can route these lines on their own
(syslog facility, SIEM) and grep them by their ``security event <kind>`` prefix. Each call
is one line; callers log once per message, not once per item of a hostile batch.
"""

from __future__ import annotations

import logging

__all__ = ["security_event"]

log = logging.getLogger("otwatch.security")


def security_event(kind: str, message: str, *args: object) -> None:
    """Log one security event: ``kind`` is a short counter-like name (``clock_ahead``,
    ``placement_claim``, …), ``message`` a %-format string with ``args``."""
    log.warning("security event %s: " + message, kind, *args)
