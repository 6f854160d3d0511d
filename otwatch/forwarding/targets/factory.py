"""A sender for a target's settings."""

from __future__ import annotations

from typing import Any

from otwatch.forwarding.targets.base import FileSpec, SyslogSpec, Target
from otwatch.forwarding.targets.file import FileTarget
from otwatch.forwarding.targets.syslog import SyslogTarget
from otwatch.forwarding.targets.webhook import WebhookTarget

__all__ = ["build_target"]


def build_target(spec: Any) -> Target:
    """A sender for ``spec`` (reads its secret files now: a missing one is an error here)."""
    if isinstance(spec, SyslogSpec):
        return SyslogTarget(spec)
    if isinstance(spec, FileSpec):
        return FileTarget(spec)
    return WebhookTarget(spec)
