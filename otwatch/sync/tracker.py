"""The sync daemon's link to central, saved into the sensor's ``sensor_state`` table.

``SyncTracker`` records (dis)connects and acks; ``otwatch status``, the daemon's sd_notify
STATUS line and its metrics read the saved state (``otwatch.health``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from otwatch.agent.store.db import Store
from otwatch.agent.store.state import get_state, put_state
from otwatch.timeutil import NS_PER_S

__all__ = ["SYNC_STATE", "SyncTracker"]

SYNC_STATE = "sync.status"
"""``sensor_state`` key the sync daemon refreshes on every (dis)connect and ack."""


@dataclass
class SyncTracker:
    """What the sync daemon knows about its link to central, saved into ``sensor_state``."""

    broker: str
    state: str = "starting"
    since_ns: int = field(default_factory=time.time_ns)
    last_ack_ns: int | None = None
    acked_seq: int = 0
    last_error: str | None = None
    connects: int = 0
    saved_ns: int = 0

    @classmethod
    def resume(cls, store: Store, broker: str, acked_seq: int) -> SyncTracker:
        """A tracker that keeps the last ack time a previous run saved."""
        with store.session() as session:
            saved = get_state(session, SYNC_STATE, None) or {}
        return cls(broker, acked_seq=acked_seq, last_ack_ns=saved.get("last_ack_ns"))

    def connected(self, now: int) -> None:
        self.state, self.since_ns, self.last_error = "connected", now, None
        self.connects += 1

    def disconnected(self, now: int, error: str | None) -> None:
        if self.state == "connected" or self.state == "starting":
            self.since_ns = now
        self.state = "disconnected"
        self.last_error = error or self.last_error

    def acked(self, seq: int, now: int) -> bool:
        """Central acknowledged events up to ``seq``; True when that moved forward."""
        if seq <= self.acked_seq:
            return False
        self.acked_seq, self.last_ack_ns = seq, now
        return True

    def as_dict(self, now: int | None = None) -> dict[str, Any]:
        return {
            "state": self.state,
            "broker": self.broker,
            "since_ns": self.since_ns,
            "last_ack_ns": self.last_ack_ns,
            "acked_seq": self.acked_seq,
            "last_error": self.last_error,
            "connects": self.connects,
            "pid": os.getpid(),
            "updated_ns": now or time.time_ns(),
        }

    def save(self, store: Store, now: int | None = None) -> None:
        now = now or time.time_ns()
        with store.session() as session:
            put_state(session, SYNC_STATE, self.as_dict(now))
        self.saved_ns = now

    def line(self, depth: int | None, now: int | None = None) -> str:
        """The one-line summary for systemd's STATUS (``systemctl status otwatch-sync``)."""
        now = now or time.time_ns()
        text = f"{self.state} to {self.broker}"
        if self.state != "connected" and self.last_error:
            text += f" ({self.last_error[:120]})"
        if depth is not None:
            text += f"; outbox {depth:,} pending"
        if self.last_ack_ns:
            text += f"; last ack {(now - self.last_ack_ns) / NS_PER_S:.0f} s ago"
        return text
