"""Apply central's commands on the sensor, each at most once, and say what happened.

Triage commands go through ``Triage.apply`` with origin central, so the lifecycle
decides (unlearn, mute and unmute are refused as sensor-only; learn only for learnable types;
comments carry their text)
and every applied change is audited and queued back to central like a local one. The command
id is recorded before applying and the reply after: a redelivered command gets its first
reply again; one interrupted by a crash is applied again, which the lifecycle turns into a
no-op if it had already landed. A ``device_override`` sets a device's name, type or Purdue
level (``sync.devices.apply_override``, audited with origin central); the device's next
snapshot carries it to central.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete

from otwatch.agent.alerts.triage import AppliesActions
from otwatch.agent.store.db import Store
from otwatch.agent.store.models import Alert
from otwatch.agent.store.models_sync import AppliedCommand
from otwatch.alerts.lifecycle import Action, Origin
from otwatch.sync import outbox
from otwatch.sync.devices import apply_override
from otwatch.sync.pcap import NoPcap, PcapProvider
from otwatch.sync.protocol.messages import Command

__all__ = ["CommandHandler", "Handled", "PcapSend", "Resync"]

log = logging.getLogger(__name__)

_ACTIONS = {
    "status": Action.SET_STATUS,
    "severity": Action.SET_SEVERITY,
    "learn": Action.LEARN,
    "unlearn": Action.UNLEARN,
    "mute": Action.MUTE,
    "unmute": Action.UNMUTE,
    "comment": Action.COMMENT,
}
_RESULT = {"applied": "applied", "unchanged": "applied"}
APPLIED_RETENTION_NS = 30 * 24 * 3600 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class PcapSend:
    request_id: str
    alert_id: int
    path: Path
    chunks: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class Resync:
    from_seq: int | None


@dataclass(slots=True)
class Handled:
    ack: dict[str, Any]
    """``CommandAck`` form."""
    replayed: bool = False
    effects: list[PcapSend | Resync] = field(default_factory=list)


def _ack(
    cmd: Command, result: str, outcome: str, reason: str, alert: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "command_id": cmd.id,
        "result": result,
        "outcome": outcome,
        "reason": reason[:512],
        "alert": alert,
    }


class CommandHandler:
    """Turns one ``Command`` into its acknowledgement and any follow-up work."""

    def __init__(
        self,
        store: Store,
        triage: Callable[[], AppliesActions],
        *,
        pcap: PcapProvider | None = None,
    ) -> None:
        self.store = store
        self._triager = triage
        self.pcap = pcap or NoPcap()

    def handle(self, cmd: Command, now: int) -> Handled:
        with self.store.session() as session:
            seen = session.get(AppliedCommand, cmd.id)
            if seen is not None and seen.done and seen.reply is not None:
                return Handled(dict(seen.reply), replayed=True)
            if seen is None:
                session.add(
                    AppliedCommand(
                        command_id=cmd.id,
                        kind=cmd.kind[:16],
                        alert_id=cmd.alert_id,
                        received_ns=now,
                        done=False,
                    )
                )
        handled = self._dispatch(cmd, now)
        with self.store.session() as session:
            row = session.get(AppliedCommand, cmd.id)
            if row is not None:
                row.done, row.reply = True, handled.ack
        return handled

    def prune(self, now: int, retention_ns: int = APPLIED_RETENTION_NS) -> None:
        """Forget handled commands older than the retention (central re-sends only pending)."""
        with self.store.session() as session:
            session.execute(
                delete(AppliedCommand).where(
                    AppliedCommand.received_ns < now - retention_ns, AppliedCommand.done
                )
            )

    def _alert_fields(self, alert_id: int | None) -> dict[str, Any] | None:
        if alert_id is None:
            return None
        with self.store.session() as session:
            alert = session.get(Alert, alert_id)
            return outbox.alert_fields(alert) if alert is not None else None

    def _dispatch(self, cmd: Command, now: int) -> Handled:
        action = _ACTIONS.get(cmd.kind)
        if action is not None:
            return self._triage(cmd, action)
        if cmd.kind == "pcap":
            return self._pcap(cmd)
        if cmd.kind == "device_override":
            return self._device_override(cmd, now)
        if cmd.kind == "resync":
            return Handled(
                _ack(cmd, "applied", "applied", "resync queued"), effects=[Resync(cmd.from_seq)]
            )
        return Handled(_ack(cmd, "rejected", "unknown", f"unknown command kind {cmd.kind!r}"))

    def _triage(self, cmd: Command, action: Action) -> Handled:
        if cmd.alert_id is None:
            return Handled(_ack(cmd, "rejected", "invalid", f"{cmd.kind} needs an alert id"))
        if action in (Action.SET_STATUS, Action.SET_SEVERITY) and not cmd.value:
            return Handled(_ack(cmd, "rejected", "invalid", f"{cmd.kind} needs a value"))
        if action == Action.COMMENT and not (cmd.text or "").strip():
            return Handled(_ack(cmd, "rejected", "invalid", "comment needs a text"))
        [result] = self._triager().apply(
            [cmd.alert_id],
            action,
            actor=f"central:{cmd.actor}"[:128],
            origin=Origin.CENTRAL,
            value=cmd.text if action == Action.COMMENT else cmd.value,
            hlc=cmd.hlc,
        )
        verdict = _RESULT.get(result.outcome, "rejected")
        return Handled(
            _ack(cmd, verdict, result.outcome, result.message, self._alert_fields(cmd.alert_id))
        )

    def _device_override(self, cmd: Command, now: int) -> Handled:
        if cmd.device_id is None or cmd.overrides is None or not cmd.overrides.model_fields_set:
            return Handled(
                _ack(cmd, "rejected", "invalid", "device_override needs a device id and overrides")
            )
        with self.store.session() as session:
            outcome, message = apply_override(
                session, cmd.device_id, cmd.overrides, actor=f"central:{cmd.actor}"[:128], now=now
            )
        return Handled(_ack(cmd, _RESULT.get(outcome, "rejected"), outcome, message))

    def _pcap(self, cmd: Command) -> Handled:
        if cmd.alert_id is None or cmd.request_id is None:
            return Handled(
                _ack(cmd, "rejected", "invalid", "pcap needs an alert id and a request id")
            )
        try:
            path = self.pcap.get(cmd.alert_id)
        except Exception as exc:  # a provider bug must not stop the daemon
            log.exception("PCAP provider failed for alert %s", cmd.alert_id)
            path, why = None, f"PCAP provider error: {exc}"
        else:
            why = f"PCAP not available for alert {cmd.alert_id}"
        if path is None or not Path(path).is_file():
            return Handled(_ack(cmd, "rejected", "not_available", why))
        chunks = tuple(cmd.chunks) if cmd.chunks is not None else None
        return Handled(
            _ack(cmd, "applied", "applied", "PCAP transfer started"),
            effects=[PcapSend(cmd.request_id, cmd.alert_id, Path(path), chunks)],
        )
