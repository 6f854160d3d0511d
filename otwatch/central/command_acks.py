"""What a sensor's acknowledgement of central's commands changes at central.

Each acknowledgement settles its command (``store.commands.record_ack``) and leaves an audit
row keyed by the command id (a redelivered acknowledgement writes nothing twice). A refusal
undoes what central had already shown: a triage field goes back to the sensor's state, a
device override is marked rejected with the sensor's reason, a PCAP request is cancelled.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.orm import Session

from otwatch.alerts.lifecycle import Origin
from otwatch.central import clockbound
from otwatch.central.commands import TRIAGE
from otwatch.central.store import alerts as alert_store
from otwatch.central.store import commands as command_store
from otwatch.central.store import devices as device_store
from otwatch.central.store.models import Command
from otwatch.sync.protocol.messages import CommandAcks

__all__ = ["record_acks", "undo_rejected"]

log = logging.getLogger(__name__)

_ACK_NS = uuid.UUID("5b0f0d8e-8f5e-4c36-9a57-6b9a4f2d7c11")


class PcapCanceller(Protocol):
    def cancel(self, request_id: str) -> object: ...


def record_acks(
    session: Session,
    sensor_id: str,
    msg: CommandAcks,
    *,
    clock_limit: int,
    rejected: Callable[[Session, str, Command, dict[str, Any]], None],
    stats: Counter[str],
    now: int,
) -> None:
    """Apply ``msg`` (already decoded and checked to come from ``sensor_id``); ``rejected``
    undoes a refused command (:func:`undo_rejected`, and what the caller adds to it)."""
    for ack in msg.acks:
        data = ack.model_dump()
        if data["alert"] and clockbound.clamp_fields(data["alert"], clock_limit):
            stats["clock_clamped"] += 1
            clockbound.report(sensor_id, 1, "a command acknowledgement")
        command = command_store.record_ack(session, sensor_id, data, now)
        if command is None:
            stats["ack_ignored"] += 1
            continue
        stats[f"ack_{command.status}"] += 1
        alert_store.add_audit(
            session,
            [
                {
                    "event_id": str(uuid.uuid5(_ACK_NS, command.id)),
                    "sensor": sensor_id,
                    "alert_id": command.alert_id,
                    "ts_ns": now,
                    "actor": f"sensor:{sensor_id}",
                    "origin": Origin.SENSOR.value,
                    "action": f"command_{command.status}",
                    "detail": {
                        "command_id": command.id,
                        "kind": command.kind,
                        "outcome": ack.outcome,
                        "reason": ack.reason,
                    },
                }
            ],
        )
        if command.status == "rejected":
            rejected(session, sensor_id, command, data)


def undo_rejected(
    session: Session, sensor_id: str, command: Command, ack: dict[str, Any], pcap: PcapCanceller
) -> None:
    """What central had shown of a command the sensor refused goes back to the sensor's."""
    log.info("sensor %s rejected %s: %s", sensor_id, command.kind, ack.get("reason"))
    if command.kind == "pcap":
        pcap.cancel((command.params or {}).get("request_id", ""))
    if command.kind == "device_override":
        device_store.override_rejected(session, sensor_id, command.id, str(ack.get("reason") or ""))
    state = ack.get("alert")
    if state is None or command.alert_id is None or command.kind not in TRIAGE:
        return
    field_name = "severity" if command.kind == "severity" else "status"
    alert_store.revert_field(session, sensor_id, command.alert_id, field_name, command.hlc, state)
