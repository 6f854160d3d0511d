"""Sensor tables of the sync daemon: the central commands it has handled.

A command from central is applied at most once: its id is recorded here (first as
``done = False`` before applying, then with the reply that was acknowledged), so a redelivered
or replayed command gets the same acknowledgement again without touching any alert.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from otwatch.agent.store.models import Base

__all__ = ["AppliedCommand"]


class AppliedCommand(Base):
    """One command received from central and the acknowledgement sent for it."""

    __tablename__ = "sync_applied_commands"

    command_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    alert_id: Mapped[int | None] = mapped_column(BigInteger)
    received_ns: Mapped[int] = mapped_column(BigInteger)
    done: Mapped[bool] = mapped_column(default=False)
    """False while being applied: a crash in between re-applies it (the lifecycle makes a
    second apply a no-op) instead of losing it."""
    reply: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The ``CommandAck`` sent for it (JSON form)."""

    __table_args__ = (Index(None, "received_ns"),)
