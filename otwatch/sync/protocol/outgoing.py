"""What the sans-network engines hand to their daemon: one message to publish."""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.sync.protocol.streams import OutboxRow

__all__ = ["Outgoing"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish with QoS 1. ``rows`` are the outbox rows it carries, if any."""

    topic: str
    payload: bytes
    retain: bool = False
    rows: tuple[OutboxRow, ...] = ()
