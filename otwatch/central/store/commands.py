"""Commands to sensors: queued pending, re-sent until the sensor acknowledges them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from otwatch.central.store.models import Command

__all__ = ["command_message", "mark_sent", "pending_commands", "record_ack"]


def pending_commands(session: Session, sensor_id: str, limit: int = 1000) -> list[Command]:
    return list(
        session.scalars(
            select(Command)
            .where(Command.sensor == sensor_id, Command.status == "pending")
            .order_by(Command.issued_ns, Command.id)
            .limit(limit)
        )
    )


def mark_sent(session: Session, ids: list[str]) -> None:
    if ids:
        session.execute(
            update(Command)
            .where(Command.id.in_(ids))
            .values(sent_count=Command.sent_count + 1)
            .execution_options(synchronize_session=False)
        )


def record_ack(session: Session, sensor_id: str, ack: dict[str, Any], now: int) -> Command | None:
    """Store the sensor's answer; a command of another sensor or already answered is left
    alone (returns None)."""
    command = session.get(Command, ack["command_id"])
    if command is None or command.sensor != sensor_id or command.status != "pending":
        return None
    command.status = "applied" if ack["result"] == "applied" else "rejected"
    command.outcome = str(ack["outcome"])[:64]
    command.reason = str(ack.get("reason") or "")[:512]
    command.acked_ns = now
    return command


def command_message(command: Command) -> dict[str, Any]:
    """The ``Command`` wire form."""
    params = command.params or {}
    message = {
        "id": command.id,
        "kind": command.kind,
        "alert_id": command.alert_id,
        "value": command.value,
        "hlc": command.hlc,
        "actor": command.actor,
        "issued_ns": command.issued_ns,
        "request_id": params.get("request_id"),
        "chunks": params.get("chunks"),
        "from_seq": params.get("from_seq"),
    }
    if params.get("text") is not None:
        message["text"] = params["text"]
    if params.get("device_id") is not None:  # sent only with device overrides
        message["device_id"] = params["device_id"]
        message["overrides"] = params.get("overrides") or {}
    return message
