"""Message bodies by format name (one table for syslog targets and the docs)."""

from __future__ import annotations

from collections.abc import Callable

from otwatch.forwarding.cef import format_cef
from otwatch.forwarding.ecs import format_ecs
from otwatch.forwarding.events import ForwardEvent
from otwatch.forwarding.leef import format_leef
from otwatch.forwarding.text import format_text

__all__ = ["FORMATTERS"]

FORMATTERS: dict[str, Callable[[ForwardEvent], str]] = {
    "text": format_text,
    "cef": format_cef,
    "leef": format_leef,
    "json": format_ecs,
}
