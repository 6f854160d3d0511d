"""The sensor's devices as the sync sends them (``DeviceSnapshot`` form) and central's device
overrides applied on the sensor.

``device_snapshot`` reads a stored device when its outbox row is published and clips it to
the protocol's limits (the store already caps names, services and peers). ``apply_override``
is the ``device_override`` command: ``store.devices.set_overrides`` with origin central,
audited, which queues the device's next snapshot so central sees the override applied.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from otwatch.agent.store.devices import set_overrides
from otwatch.agent.store.models import AuditEvent
from otwatch.agent.store.models_devices import DeviceRow
from otwatch.sync.protocol.devices import (
    DEVICE_TYPES,
    MAX_EVIDENCE,
    MAX_FACTS,
    MAX_MACS,
    MAX_NAMES,
    MAX_PEERS,
    MAX_SERVICES,
    DeviceOverrides,
)

__all__ = ["apply_override", "device_snapshot"]

_STORE_KEYS = {"name": "name", "type": "device_type", "purdue_level": "purdue"}
"""``DeviceOverrides`` keys -> ``set_overrides`` keywords."""


def _text(value: Any, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


def _level(value: Any) -> int | None:
    return value if isinstance(value, int) and 0 <= value <= 5 else None


def _strings(values: Any, count: int, limit: int = 64) -> list[str]:
    return [str(v)[:limit] for v in list(values or ())[:count]]


def device_snapshot(row: DeviceRow) -> dict[str, Any]:
    """The device in ``DeviceSnapshot`` form, within the protocol's limits."""
    macs = sorted((row.macs or {}).items(), key=lambda kv: kv[1][0])[-MAX_MACS:]
    facts = [
        {"field": str(f.get("field"))[:64], "value": str(f.get("value"))[:255],
         "source": str(f.get("source"))[:64], "ts_ns": max(0, int(f.get("ts_ns") or 0))}
        for f in list(row.facts or ())[:MAX_FACTS]
    ]  # fmt: skip
    names = {
        str(name)[:255]: str((v or {}).get("source", ""))[:64]
        for name, v in list((row.names or {}).items())[:MAX_NAMES]
    }
    vlan = row.vlan if isinstance(row.vlan, int) and 0 <= row.vlan <= 4095 else None
    return {
        "id": row.id, "key": row.key[:64], "ip": _text(row.ip, 45), "mac": _text(row.mac, 17),
        "vlan": vlan, "name": _text(row.name, 255), "vendor": _text(row.vendor, 255),
        "model": _text(row.model, 255), "firmware": _text(row.firmware, 64),
        "type": row.device_type if row.device_type in DEVICE_TYPES else "Unknown",
        "purdue_level": _level(row.purdue_level), "type_reason": (row.type_reason or "")[:255],
        "protocols": _strings(row.protocols, MAX_SERVICES), "peers": len(row.peers or ()),
        "learned": bool(row.learned), "first_seen_ns": row.first_seen_ns,
        "last_seen_ns": row.last_seen_ns, "packets_in": row.packets_in,
        "packets_out": row.packets_out, "bytes_in": row.bytes_in, "bytes_out": row.bytes_out,
        "overrides": {
            "name": _text(row.name_override, 255),
            "type": row.type_override if row.type_override in DEVICE_TYPES else None,
            "purdue_level": _level(row.purdue_override),
        },
        "facts": facts, "names": names,
        "mac_history": [{"mac": mac[:17], "first_ns": span[0], "last_ns": span[1]}
                        for mac, span in macs],
        "services": _strings(row.services, MAX_SERVICES),
        "peer_addresses": _strings(row.peers, MAX_PEERS),
        "evidence": _strings(sorted(row.evidence or {}), MAX_EVIDENCE),
    }  # fmt: skip


def apply_override(
    session: Session, device_id: int, overrides: DeviceOverrides, *, actor: str, now: int
) -> tuple[str, str]:
    """Apply a central override: ``(outcome, message)``; outcome ``applied``, ``unchanged``
    or ``not_found``."""
    row = session.get(DeviceRow, device_id)
    if row is None:
        return "not_found", f"device {device_id} does not exist on this sensor"
    given = {k: getattr(overrides, k) for k in overrides.model_fields_set}
    current = {"name": row.name_override, "type": row.type_override,
               "purdue_level": row.purdue_override}  # fmt: skip
    if all(current[k] == v for k, v in given.items()):
        return "unchanged", f"device {device_id} already has these overrides"
    change = set_overrides(
        session, row, now_ns=now, **{_STORE_KEYS[k]: v for k, v in given.items()}
    )
    session.add(
        AuditEvent(alert_id=None, ts_ns=now, actor=actor, origin="central",
                   action="device_override", detail={"device": row.key, **change})
    )  # fmt: skip
    return "applied", f"device {device_id} ({row.key}): overrides {change}"
