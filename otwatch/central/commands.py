"""Commands central sends to sensors: one typed spec per command, checked and recorded here.

A spec (``SetStatus``, ``SetSeverity``, ``Learn``, ``PullPcap``, ``Resync``,
``DeviceOverride``) says what the
command carries and how central checks it. ``CommandIssuer.issue`` stores the command pending,
audits it and returns the message that carries it. Triage specs are checked against central's
copy of the alert with the sensor's lifecycle rules and applied there at once (stamped with
central's clock); the sensor's answer confirms or reverts them. A ``Comment`` is recorded
centrally (its audit row) and on the sensor (a step beyond the spec, for the portal). Unlearn,
mute and unmute are sensor-only (spec section 2) and have no spec. A ``DeviceOverride`` (name,
type, Purdue level of an inventory device) is recorded on central's device at once, pending
until the sensor's next snapshot of the device carries it; ``Unchecked`` sends any
kind as given, unchecked and unapplied, so tests can prove the sensor's own refusals.

``command_for(kind, ...)`` turns the kind string of the HTTP API and the CLI into a spec.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from otwatch.alerts.lifecycle import (
    SENSOR_ONLY,
    Action,
    AlertState,
    Change,
    Origin,
    TransitionRefused,
    plan,
)
from otwatch.central.pcap import PcapAssembler
from otwatch.central.store import alerts as alert_store
from otwatch.central.store import commands as command_store
from otwatch.central.store import devices as device_store
from otwatch.central.store import sensors as sensor_store
from otwatch.central.store.db import CentralStore
from otwatch.central.store.models import Alert, Command, Sensor
from otwatch.errors import OtwatchError
from otwatch.hlc import HybridClock
from otwatch.sync.protocol.devices import DeviceOverrides
from otwatch.sync.protocol.messages import MAX_BYTES, MAX_COMMANDS, VERSION, encode_raw
from otwatch.sync.protocol.outgoing import Outgoing
from otwatch.sync.protocol.topics import down_topic

__all__ = [
    "MAX_COMMENT",
    "CommandIssuer",
    "CommandRefused",
    "CommandSpec",
    "Comment",
    "DeviceOverride",
    "IssueResult",
    "Learn",
    "PullPcap",
    "Resync",
    "SetSeverity",
    "SetStatus",
    "Unchecked",
    "command_for",
    "command_messages",
]

MAX_PCAP_CHUNKS = 4096
"""A PCAP re-request names at most this many missing chunks."""
MAX_COMMENT = 2000
"""Characters of a comment from central (the protocol allows 4096)."""
_BATCH_BYTES = MAX_BYTES["commands"] - 256
"""A ``down/commands`` message's commands, leaving room for its envelope."""


class CommandRefused(OtwatchError):
    """Central will not send this command (the operator reads the reason)."""


@dataclass(frozen=True, slots=True)
class IssueResult:
    outcome: str
    """``queued`` or ``unchanged``."""
    message: str
    command_id: str | None = None
    request_id: str | None = None
    outgoing: tuple[Outgoing, ...] = ()


# -- the specs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Triage:
    """A lifecycle change applied centrally at once (status, severity, learn)."""

    alert_id: int
    action: ClassVar[Action]

    @property
    def kind(self) -> str:
        return self.action.value

    @property
    def value(self) -> str | None:
        return None

    @staticmethod
    def columns(change: Change) -> dict[str, Any]:
        """The alert columns the change sets on central's copy."""
        return {"status": change.status.value, "close_reason": _reason(change)}


@dataclass(frozen=True, slots=True)
class SetStatus(_Triage):
    status: str
    action: ClassVar[Action] = Action.SET_STATUS

    @property
    def value(self) -> str | None:
        return self.status


@dataclass(frozen=True, slots=True)
class SetSeverity(_Triage):
    severity: str
    action: ClassVar[Action] = Action.SET_SEVERITY

    @property
    def value(self) -> str | None:
        return self.severity

    @staticmethod
    def columns(change: Change) -> dict[str, Any]:
        return {"severity": change.severity}


@dataclass(frozen=True, slots=True)
class Learn(_Triage):
    action: ClassVar[Action] = Action.LEARN


@dataclass(frozen=True, slots=True)
class PullPcap:
    """Ask for an alert's PCAP (``chunks``: only these, for a stalled transfer)."""

    alert_id: int
    request_id: str | None = None
    chunks: tuple[int, ...] | None = None
    kind: ClassVar[str] = "pcap"
    value: ClassVar[str | None] = None


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment on an alert (``text``: 1 to ``MAX_COMMENT`` characters, stripped)."""

    alert_id: int
    text: str
    kind: ClassVar[str] = "comment"
    value: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        if not 0 < len(self.text.strip()) <= MAX_COMMENT:
            raise CommandRefused(f"a comment needs 1 to {MAX_COMMENT} characters of text")
        object.__setattr__(self, "text", self.text.strip())


@dataclass(frozen=True, slots=True)
class Resync:
    """Ask the sensor to re-send its events from ``from_seq`` (None: a full snapshot)."""

    from_seq: int | None = None
    kind: ClassVar[str] = "resync"
    alert_id: ClassVar[int | None] = None
    value: ClassVar[str | None] = None


@dataclass(frozen=True, slots=True)
class DeviceOverride:
    """Set (or clear with None) a device's name, type or Purdue level on its sensor; only
    the keys of ``overrides`` change. Checked with the protocol's ``DeviceOverrides``."""

    device_id: int
    overrides: dict[str, Any]
    kind: ClassVar[str] = "device_override"
    alert_id: ClassVar[int | None] = None
    value: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        if not self.overrides:
            raise CommandRefused("a device override needs name, type or purdue_level")
        try:
            checked = DeviceOverrides.model_validate(self.overrides)
        except ValueError as exc:
            raise CommandRefused(f"invalid device override: {exc}") from None
        object.__setattr__(self, "overrides", checked.model_dump(include=set(self.overrides)))


@dataclass(frozen=True, slots=True)
class Unchecked:
    """Any command sent as given, neither checked nor applied centrally: the sensor decides
    (proves the sensor's own refusals, e.g. of a sensor-only action)."""

    kind: str
    alert_id: int | None = None
    value: str | None = None


CommandSpec = (
    SetStatus | SetSeverity | Learn | Comment | PullPcap | Resync | DeviceOverride | Unchecked
)
TRIAGE: dict[str, type[_Triage]] = {"status": SetStatus, "severity": SetSeverity, "learn": Learn}
"""Kinds central applies to its own copy; the sensor's rejection reverts them."""


def command_for(
    kind: str,
    *,
    alert_id: int | None = None,
    value: str | None = None,
    request_id: str | None = None,
    chunks: list[int] | None = None,
    from_seq: int | None = None,
    text: str | None = None,
    device_id: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> CommandSpec:
    """The spec for a command named by its kind string (API, CLI, tests)."""
    if kind in SENSOR_ONLY:
        raise CommandRefused(f"{kind} is only possible on the sensor (spec: sensor only)")
    if kind == "resync":
        return Resync(from_seq)
    if kind == "device_override":
        if device_id is None:
            raise CommandRefused("device_override needs a device id")
        return DeviceOverride(device_id, dict(overrides or {}))
    if kind not in TRIAGE and kind not in ("pcap", "comment"):
        raise CommandRefused(f"unknown command kind {kind!r}")
    if alert_id is None:
        raise CommandRefused(f"{kind} needs an alert id")
    if kind == "comment":
        return Comment(alert_id, text or "")
    if kind == "pcap":
        return PullPcap(alert_id, request_id, None if chunks is None else tuple(chunks))
    if kind == "status":
        return SetStatus(alert_id, value or "")
    if kind == "severity":
        return SetSeverity(alert_id, value or "")
    return Learn(alert_id)


def _params(spec: CommandSpec) -> dict[str, Any]:
    """The command's ``params`` column and message field."""
    if isinstance(spec, PullPcap):
        params: dict[str, Any] = {"request_id": spec.request_id}
        if spec.chunks is not None:
            params["chunks"] = sorted(set(spec.chunks))[:MAX_PCAP_CHUNKS]
        return params
    if isinstance(spec, Resync):
        return {"from_seq": spec.from_seq}
    if isinstance(spec, Comment):
        return {"text": spec.text}
    if isinstance(spec, DeviceOverride):
        return {"device_id": spec.device_id, "overrides": spec.overrides}
    return {}


def command_messages(sensor_id: str, commands: list[Command]) -> list[Outgoing]:
    """``down/commands`` messages carrying ``commands``: at most ``MAX_COMMANDS`` and
    ``MAX_BYTES["commands"]`` bytes each (comments carry up to a few KiB of text)."""
    batches: list[list[dict[str, Any]]] = []
    size = 0
    for command in commands:
        message = command_store.command_message(command)
        cost = len(encode_raw(message)) + 1
        if not batches or len(batches[-1]) == MAX_COMMANDS or size + cost > _BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(message)
        size += cost
    return [
        Outgoing(
            down_topic(sensor_id, "commands"),
            encode_raw({"v": VERSION, "sensor_id": sensor_id, "commands": batch}),
        )
        for batch in batches
    ]


def _reason(change: Change) -> str | None:
    return change.close_reason.value if change.close_reason else None


def _fields(status: str, close_reason: str | None, severity: str) -> dict[str, Any]:
    return {"status": status, "close_reason": close_reason, "severity": severity}


def _plan(alert: Alert, spec: _Triage) -> Change | None:
    state = AlertState.of(alert, alert.alert_id)
    try:
        return plan(state, spec.action, Origin.CENTRAL, spec.value)
    except (TransitionRefused, ValueError) as exc:
        raise CommandRefused(str(exc)) from None


# -- issuing ------------------------------------------------------------------------------


@dataclass
class CommandIssuer:
    """Stores commands pending, with their audit row and central's own change."""

    store: CentralStore
    clock: HybridClock
    pcap: PcapAssembler
    stats: Counter[str]

    def issue(
        self, sensor_id: str, spec: CommandSpec, *, actor: str, now: int | None = None
    ) -> IssueResult:
        """Queue ``spec`` for a sensor and return the message that carries it."""
        now = time.time_ns() if now is None else now
        actor = actor[:128]
        if isinstance(spec, PullPcap) and not spec.request_id:
            spec = PullPcap(spec.alert_id, str(uuid.uuid4()), spec.chunks)
        params = _params(spec)
        with self.store.session() as session:
            if session.get(Sensor, sensor_id) is None:
                raise CommandRefused(f"unknown sensor {sensor_id!r}")
            hlc = self.clock.now()
            before = after = None
            if spec.kind in TRIAGE or spec.kind in SENSOR_ONLY or spec.kind == "comment":
                assert isinstance(spec, _Triage | Unchecked | Comment)
                alert = self._alert(session, sensor_id, spec)
                if isinstance(spec, _Triage):
                    change = _plan(alert, spec)
                    if change is None:
                        return IssueResult("unchanged", f"alert {spec.alert_id} is already so")
                    before = _fields(alert.status, alert.close_reason, alert.severity)
                    after = _fields(change.status.value, _reason(change), change.severity)
                    columns = spec.columns(change)
                    alert_store.apply_central_change(session, alert, columns, hlc, now)
            command_id = str(uuid.uuid4())
            if isinstance(spec, DeviceOverride):
                before, after = self._device(session, sensor_id, spec, actor, now, command_id)
            command = Command(
                id=command_id,
                sensor=sensor_id,
                kind=spec.kind,
                alert_id=spec.alert_id,
                value=spec.value,
                hlc=hlc,
                actor=actor,
                issued_ns=now,
                params=params,
                status="pending",
                sent_count=1,
            )
            session.add(command)
            detail = {"command_id": command.id, "before": before, "after": after, "hlc": hlc}
            alert_store.add_audit(
                session,
                [
                    {
                        "event_id": command.id,
                        "sensor": sensor_id,
                        "alert_id": spec.alert_id,
                        "ts_ns": now,
                        "actor": actor,
                        "origin": Origin.CENTRAL.value,
                        "action": spec.kind,
                        "detail": {**detail, **params},
                    }
                ],
            )
            sensor_store.put_state(session, "hlc", self.clock.last)
        request_id = spec.request_id if isinstance(spec, PullPcap) else None
        if isinstance(spec, PullPcap) and spec.chunks is None:
            self.pcap.expect(sensor_id, spec.alert_id, request_id or "", now)
        self.stats[f"issued_{spec.kind}"] += 1
        return IssueResult(
            "queued",
            f"{spec.kind} queued for sensor {sensor_id}",
            command.id,
            request_id,
            tuple(command_messages(sensor_id, [command])),
        )

    @staticmethod
    def _device(
        session: Any, sensor_id: str, spec: DeviceOverride, actor: str, now: int, command_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        row = device_store.device_by_sensor_id(session, sensor_id, spec.device_id)
        if row is None:
            raise CommandRefused(f"device {spec.device_id} of sensor {sensor_id} is unknown")
        before = device_store.set_central_override(
            session, row, spec.overrides, actor=actor, now=now, command_id=command_id
        )
        return before, dict(spec.overrides)

    @staticmethod
    def _alert(session: Any, sensor_id: str, spec: _Triage | Unchecked | Comment) -> Alert:
        if spec.alert_id is None:
            raise CommandRefused(f"{spec.kind} needs an alert id")
        alert = alert_store.get_alert(session, sensor_id, spec.alert_id)
        if alert is None:
            raise CommandRefused(f"alert {spec.alert_id} of sensor {sensor_id} is unknown")
        return alert
