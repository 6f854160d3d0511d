"""Message schemas of protocol version 1 (pydantic), their size limits and JSON encoding.

Every message carries ``v`` (the protocol version) and ``sensor_id``; receivers validate
strictly (unknown keys, wrong types and oversized values are errors) and check the byte size
before parsing. ``decode`` raises ``ProtocolError`` whose ``reason`` is a short counter name
(``oversized``, ``malformed``, ``version``, ``invalid``) for health counters.

JSON, not a binary encoding: ``bench/sync.py`` shows the link is not the bottleneck (the
databases are), and JSON keeps the wire readable with ``mosquitto_sub``. The one exception is
a PCAP chunk: a JSON header line followed by the raw bytes (``encode_pcap_chunk``), because
base64 and JSON over a 100 MB file cost more than moving it (``bench/central.py``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from otwatch.sync.protocol.devices import DeviceOverrides, DeviceSnapshot

__all__ = [
    "EVENT_KINDS",
    "MAX_BYTES",
    "VERSION",
    "AlertFields",
    "AlertSnapshot",
    "CentralBirth",
    "ChangeDetail",
    "Command",
    "CommandAck",
    "CommandAcks",
    "CommandBatch",
    "Event",
    "EventAck",
    "EventBatch",
    "EventEnvelope",
    "FieldState",
    "Health",
    "PcapChunk",
    "ProtocolError",
    "SensorBirth",
    "SensorStatus",
    "decode",
    "decode_pcap_chunk",
    "encode",
    "encode_pcap_chunk",
]

VERSION: Final = 1

MAX_BYTES = {
    "events": 1 << 20,
    "acks_up": 256 << 10,
    "status": 16 << 10,
    "birth": 4 << 10,
    "pcap": 256 << 10,
    "commands": 64 << 10,
    "acks_down": 4 << 10,
}
"""Byte limit per message type, checked before parsing."""

MAX_EVENTS = 1000
MAX_COMMANDS = 100
MAX_ACKS = 1000
PCAP_CHUNK_BYTES = 128 << 10
"""Raw bytes per PCAP chunk the sensor sends."""
PCAP_HEADER_BYTES = 1024
"""Longest ``PcapChunk`` header line."""
PCAP_MAX_CHUNK_BYTES = MAX_BYTES["pcap"] - PCAP_HEADER_BYTES

EVENT_KINDS = frozenset(
    {"alert", "status", "severity", "learn", "unlearn", "mute", "unmute", "comment", "device"}
)
COMMAND_KINDS = frozenset(
    {"status", "severity", "learn", "unlearn", "mute", "unmute", "comment", "pcap", "resync",
     "device_override"}
)  # fmt: skip

SensorId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Uuid = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]
Kind = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,16}$")]
Seq = Annotated[int, Field(ge=1, lt=1 << 63)]
NonNeg = Annotated[int, Field(ge=0, lt=1 << 63)]
TimeNs = Annotated[int, Field(ge=0, lt=1 << 63)]
Short = Annotated[str, StringConstraints(max_length=64)]
Name = Annotated[str, StringConstraints(max_length=200)]
Actor = Annotated[str, StringConstraints(max_length=128)]
Text = Annotated[str, StringConstraints(max_length=4096)]
Status = Literal["new", "active", "closed"]
CloseReason = Literal["manual", "learned", "muted", "auto"]
Severity = Literal["low", "medium", "high"]
Origin = Literal["sensor", "central"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Envelope(_Message):
    v: Literal[1] = VERSION
    sensor_id: SensorId


class FieldState(_Message):
    """Status and severity of an alert before or after a change."""

    status: Status
    close_reason: CloseReason | None = None
    severity: Severity


class AlertFields(FieldState):
    """The last-writer-wins fields of an alert with their clocks."""

    status_hlc: NonNeg
    severity_hlc: NonNeg


class AlertSnapshot(AlertFields):
    """An alert as the sensor stores it, read when the event is published."""

    id: NonNeg
    type_id: Annotated[str, StringConstraints(max_length=80)]
    name: Name
    engine: Annotated[str, StringConstraints(max_length=32)]
    category: Short
    dedup_key: Short
    source_address: Short | None = None
    destination_address: Short | None = None
    source_mac: Annotated[str, StringConstraints(max_length=17)] | None = None
    destination_mac: Annotated[str, StringConstraints(max_length=17)] | None = None
    protocol: Annotated[str, StringConstraints(max_length=32)] | None = None
    first_detection_ns: TimeNs
    last_detection_ns: TimeNs
    last_activity_ns: TimeNs
    detections: NonNeg
    site: Short = ""
    zone: Short = ""
    tactics: Annotated[list[Name], Field(max_length=32)] = []
    learnable: bool
    mutable: bool
    message: Text
    remediation: Annotated[list[Text], Field(max_length=32)] = []
    fields: Annotated[dict[Short, Any], Field(max_length=64)] = {}


class ChangeDetail(_Message):
    """What a change made on the sensor did (the outbox payload of a change row)."""

    actor: Actor
    origin: Origin
    ts_ns: TimeNs
    hlc: NonNeg = 0
    before: FieldState | None = None
    after: FieldState | None = None
    text: Text | None = None


class Event(_Message):
    """One outbox row: an alert created/updated, a change made on the sensor, or (kind
    ``device``) a device of the inventory created/updated/forgotten."""

    seq: Seq
    id: Uuid
    kind: Kind
    alert_id: NonNeg | None = None
    ts_ns: TimeNs
    alert: AlertSnapshot | None = None
    """The alert's state when the event was published (None: it no longer exists)."""
    change: ChangeDetail | None = None
    device_id: NonNeg | None = None
    """Kind ``device``: the sensor's device id."""
    device: DeviceSnapshot | None = None
    """Kind ``device``: the device when the event was published (None: it was forgotten)."""


class EventBatch(_Envelope):
    """``up/events``: outbox rows in sequence order (gaps possible while rows are coalesced)."""

    epoch: Uuid
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_EVENTS)]


class EventEnvelope(_Envelope):
    """An event batch with its events unchecked: central's second pass when one event of a
    batch is invalid, so that one bad event is dropped (and counted), not the whole batch."""

    epoch: Uuid
    events: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_EVENTS)]


class EventAck(_Envelope):
    """``down/acks``: every event up to ``hw`` of this epoch is committed centrally."""

    epoch: Uuid
    hw: NonNeg


class SensorBirth(_Envelope):
    """``up/birth``, on every connect: what the sensor has and believes central has."""

    epoch: Uuid
    version: Short
    site: Short = ""
    zone: Short = ""
    acked_hw: NonNeg
    """Highest sequence number central acknowledged (rows up to it are deleted)."""
    last_seq: NonNeg
    """Highest sequence number in the outbox (0: none yet)."""
    ts_ns: TimeNs


class CentralBirth(_Envelope):
    """``down/birth``, on central's connect and in reply to a sensor birth."""

    epoch: Uuid | None = None
    """The sensor epoch central's ``hw`` belongs to (None: central knows no stream yet)."""
    hw: NonNeg
    pending_commands: NonNeg = 0
    ts_ns: TimeNs


class Health(_Message):
    capture_drops: NonNeg | None = None
    outbox_depth: NonNeg = 0
    ring_usage: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    dropped: Annotated[dict[Short, NonNeg], Field(max_length=32)] = {}
    """Inbound messages dropped, by reason."""


class SensorStatus(_Envelope):
    """``up/status`` (retained; the last will says ``offline``)."""

    state: Literal["online", "offline"]
    version: Short
    ts_ns: TimeNs
    health: Health = Health()


class Command(_Message):
    """One request from central. ``kind`` is checked by the sensor so that an unknown kind is
    rejected with a reason instead of dropping the whole batch."""

    id: Uuid
    kind: Kind
    alert_id: NonNeg | None = None
    value: Short | None = None
    """New status or severity."""
    hlc: NonNeg = 0
    actor: Actor
    issued_ns: TimeNs
    request_id: Uuid | None = None
    """PCAP transfer id (``up/pcap/{request_id}``)."""
    chunks: Annotated[list[NonNeg], Field(max_length=4096)] | None = None
    """PCAP: re-send only these chunk indexes."""
    from_seq: NonNeg | None = None
    """Resync: re-send outbox rows from this sequence number; None = snapshot of every alert."""
    text: Text | None = None
    """Comment: its text (sent only with comments, so older sensors still read the rest)."""
    device_id: NonNeg | None = None
    """device_override: the sensor's device id (sent only with device overrides)."""
    overrides: DeviceOverrides | None = None
    """device_override: the keys to set; null clears one, a key left out is unchanged."""


class CommandBatch(_Envelope):
    """``down/commands``."""

    commands: Annotated[list[Command], Field(min_length=1, max_length=MAX_COMMANDS)]


class CommandAck(_Message):
    command_id: Uuid
    result: Literal["applied", "rejected"]
    outcome: Short
    """applied, unchanged, superseded, refused, not_found, not_available, unknown, invalid."""
    reason: Annotated[str, StringConstraints(max_length=512)] = ""
    alert: AlertFields | None = None
    """The alert's fields after handling the command, so central can converge on a refusal."""


class CommandAcks(_Envelope):
    """``up/acks``."""

    acks: Annotated[list[CommandAck], Field(min_length=1, max_length=MAX_ACKS)]


class PcapChunk(_Envelope):
    """``up/pcap/{request_id}``: the header of one chunk of a PCAP file.

    On the wire the header is one line of JSON followed by the chunk's raw bytes
    (``encode_pcap_chunk``): no base64, so neither side spends time re-encoding a file that
    can be hundreds of megabytes."""

    request_id: Uuid
    alert_id: NonNeg
    index: NonNeg
    total: Annotated[int, Field(ge=1, le=1 << 20)]
    chunk_bytes: Annotated[int, Field(ge=1, le=PCAP_MAX_CHUNK_BYTES)]
    """Bytes per chunk: chunk ``index`` starts at ``index * chunk_bytes`` of the file."""
    size: NonNeg
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    """Of the whole file."""


class ProtocolError(ValueError):
    """An inbound message that is dropped; ``reason`` is the counter name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


M = TypeVar("M", bound=BaseModel)


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json(exclude_defaults=False).encode()


def encode_raw(obj: dict[str, Any]) -> bytes:
    """Compact JSON of a plain dict already shaped like a message (the sensor's fast path)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def decode(model: type[M], payload: bytes, limit: int) -> M:
    """Validate ``payload`` as ``model`` or raise ``ProtocolError``; never anything else."""
    if len(payload) > limit:
        raise ProtocolError("oversized", f"{len(payload)} bytes > limit {limit}")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise ProtocolError("malformed", "not valid JSON") from None
        if any(e["loc"] == ("v",) for e in errors):
            raise ProtocolError(
                "version", f"unsupported protocol version (want {VERSION})"
            ) from None
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise ProtocolError("invalid", f"{where}: {first['msg']}"[:300]) from None
    except (ValueError, RecursionError) as exc:  # pragma: no cover - defensive
        raise ProtocolError("malformed", str(exc)[:200]) from None


def encode_pcap_chunk(header: dict[str, Any], data: bytes) -> bytes:
    """A ``PcapChunk`` header (a plain dict shaped like one), a newline, the raw bytes."""
    return b"%s\n%s" % (encode_raw(header), data)


def decode_pcap_chunk(payload: bytes) -> tuple[PcapChunk, memoryview]:
    """Split and validate a PCAP chunk: (header, the chunk's bytes, not copied).
    Raises ``ProtocolError`` like ``decode``; the length of the data is the receiver's to
    check against the header (it knows the transfer)."""
    if len(payload) > MAX_BYTES["pcap"]:
        raise ProtocolError("oversized", f"{len(payload)} bytes > limit {MAX_BYTES['pcap']}")
    end = payload.find(b"\n", 0, PCAP_HEADER_BYTES)
    if end < 0:
        raise ProtocolError("malformed", "PCAP chunk without a header line")
    header = decode(PcapChunk, payload[:end], PCAP_HEADER_BYTES)
    return header, memoryview(payload)[end + 1 :]
