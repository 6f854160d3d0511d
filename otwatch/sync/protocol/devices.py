"""Device inventory messages of protocol version 1: a device snapshot and an override.

A ``device`` event carries one device of the sensor's inventory as it is when the event is
published (``DeviceSnapshot``; None: the device was forgotten). Every list and string is
bounded, like an alert snapshot, so a hostile message is rejected whole by validation. The
sensor caps what it stores (16 names, 64 services, 256 peers per device) below these limits.

A ``device_override`` command carries ``DeviceOverrides``: only the keys it names change on
the sensor (``model_fields_set``), null clears one.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "DEVICE_TYPES",
    "MAX_FACTS",
    "MAX_PEERS",
    "DeviceFact",
    "DeviceOverrides",
    "DeviceSnapshot",
    "MacSpan",
]

DEVICE_TYPES: Final = (
    "PLC", "RTU/outstation", "HMI/SCADA client", "Engineering station", "Historian",
    "Network device", "IT host", "Field device", "Unknown",
)  # fmt: skip
"""The sensor's device types (``agent.inventory.roles.DEVICE_TYPES``; a test keeps them
equal: the protocol imports neither side)."""
DeviceType = Literal[
    "PLC", "RTU/outstation", "HMI/SCADA client", "Engineering station", "Historian",
    "Network device", "IT host", "Field device", "Unknown",
]  # fmt: skip

MAX_FACTS = 64
MAX_PEERS = 256
MAX_SERVICES = 64
MAX_NAMES = 16
MAX_MACS = 32
MAX_EVIDENCE = 64

NonNeg = Annotated[int, Field(ge=0, lt=1 << 63)]
Short = Annotated[str, StringConstraints(max_length=64)]
Text = Annotated[str, StringConstraints(max_length=255)]
Mac = Annotated[str, StringConstraints(max_length=17)]
Purdue = Annotated[int, Field(ge=0, le=5)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DeviceFact(_Message):
    """One identification fact with where and when it was seen."""

    field: Short
    value: Text
    source: Short
    ts_ns: NonNeg


class MacSpan(_Message):
    mac: Mac
    first_ns: NonNeg
    last_ns: NonNeg


class DeviceOverrides(_Message):
    """A user's name, type and Purdue level; in a command only the keys given change."""

    name: Text | None = None
    type: DeviceType | None = None
    purdue_level: Purdue | None = None


class DeviceSnapshot(_Message):
    """A device of the sensor's inventory (``devices_query.device_record`` in wire form:
    times in ns, lists capped)."""

    id: NonNeg
    key: Short
    ip: Annotated[str, StringConstraints(max_length=45)] | None = None
    mac: Mac | None = None
    vlan: Annotated[int, Field(ge=0, le=4095)] | None = None
    name: Text | None = None
    vendor: Text | None = None
    model: Text | None = None
    firmware: Short | None = None
    type: DeviceType
    purdue_level: Purdue | None = None
    type_reason: Text = ""
    protocols: Annotated[list[Short], Field(max_length=MAX_SERVICES)] = []
    peers: NonNeg = 0
    learned: bool = False
    first_seen_ns: NonNeg
    last_seen_ns: NonNeg
    packets_in: NonNeg = 0
    packets_out: NonNeg = 0
    bytes_in: NonNeg = 0
    bytes_out: NonNeg = 0
    overrides: DeviceOverrides = DeviceOverrides()
    facts: Annotated[list[DeviceFact], Field(max_length=MAX_FACTS)] = []
    names: Annotated[dict[Text, Short], Field(max_length=MAX_NAMES)] = {}
    """name -> source."""
    mac_history: Annotated[list[MacSpan], Field(max_length=MAX_MACS)] = []
    services: Annotated[list[Short], Field(max_length=MAX_SERVICES)] = []
    peer_addresses: Annotated[list[Short], Field(max_length=MAX_PEERS)] = []
    evidence: Annotated[list[Short], Field(max_length=MAX_EVIDENCE)] = []
