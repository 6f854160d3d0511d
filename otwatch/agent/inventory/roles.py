"""A device's type and Purdue level, guessed from what it does, with the reason.

Pure: it reads a stored device record (services, evidence, identification facts, how many
IPs share its MAC) and returns ``(type, purdue level, reason)``. User overrides are applied
by the caller and always win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["DEVICE_TYPES", "guess_role"]

PLC, RTU, HMI, ENGINEERING, HISTORIAN, NETWORK, IT, FIELD, UNKNOWN = (
    "PLC", "RTU/outstation", "HMI/SCADA client", "Engineering station", "Historian",
    "Network device", "IT host", "Field device", "Unknown",
)  # fmt: skip
DEVICE_TYPES = (PLC, RTU, HMI, ENGINEERING, HISTORIAN, NETWORK, IT, FIELD, UNKNOWN)

_CONTROLLER_APPS = frozenset({"modbus", "s7comm", "enip", "bacnet", "omron_fins", "melsec",
                              "ge_srtp", "proconos", "hart_ip", "opcua"})  # fmt: skip
_OUTSTATION_APPS = frozenset({"dnp3", "iec104", "c37118"})
_SCADA_APPS = _CONTROLLER_APPS | _OUTSTATION_APPS
_DATABASE_APPS = frozenset({"tds", "mysql", "postgres"})
_NETWORK_APPS = frozenset({"snmp"})


def _apps(services: Iterable[str], side: str) -> set[str]:
    """Application names of ``server:`` or ``client:`` service entries."""
    out = set()
    for entry in services:
        kind, _, rest = entry.partition(":")
        if kind == side:
            out.add(rest.rsplit("/", 1)[-1] if side == "server" else rest)
    return out


def guess_role(record: Mapping[str, Any], shared_mac: bool = False) -> tuple[str, int | None, str]:
    """``(type, Purdue level or None, reason)`` for a stored device record."""
    services = record.get("services") or []
    evidence = record.get("evidence") or {}
    facts = {f["field"]: f["value"] for f in record.get("facts") or []}
    served, used = _apps(services, "server"), _apps(services, "client")
    if "program_transfer" in evidence or "plc_control" in evidence:
        return ENGINEERING, 2, "programs, uploads from or stops controllers"
    if "IO-Controller" in facts.get("role", ""):
        return PLC, 1, "PROFINET DCP role IO-Controller"
    if "IO-Device" in facts.get("role", ""):
        return FIELD, 0, "PROFINET DCP role IO-Device"
    device_type = facts.get("device_type", "")
    if "Programmable Logic Controller" in device_type:
        return PLC, 1, f"CIP identity: {device_type}"
    if "Human-Machine Interface" in device_type:
        return HMI, 2, f"CIP identity: {device_type}"
    if "dnp3_outstation" in evidence or served & _OUTSTATION_APPS:
        names = sorted(served & _OUTSTATION_APPS) or ["dnp3"]
        return RTU, 1, f"answers as outstation ({', '.join(names)})"
    if served & _CONTROLLER_APPS:
        return PLC, 1, f"serves {', '.join(sorted(served & _CONTROLLER_APPS))}"
    if "dnp3_master" in evidence and not used & _DATABASE_APPS:
        return HMI, 2, "DNP3 master"
    if used & _SCADA_APPS:
        if served & _DATABASE_APPS:
            return (
                HISTORIAN,
                3,
                f"polls {', '.join(sorted(used & _SCADA_APPS))} and serves a database",
            )
        return HMI, 2, f"polls {', '.join(sorted(used & _SCADA_APPS))}"
    if "l2_control" in evidence or shared_mac or served & _NETWORK_APPS:
        if "l2_control" in evidence:
            why = "sends LLDP/STP/CDP"
        else:
            why = "its MAC carries several IPs (routes)" if shared_mac else "serves SNMP"
        return NETWORK, None, why
    if served or used:
        return IT, 4, "speaks only IT protocols"
    return UNKNOWN, None, "no traffic that tells"
