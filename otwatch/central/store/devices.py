"""Central's device inventory: upsert from sensor snapshots, list with filters, overrides.

Data functions take a ``Session``; the caller owns the transaction. A snapshot is the
``DeviceSnapshot`` dict a sensor sends (validated by the caller); a device is matched by
``(sensor, key)``. A central override is kept on the row (``central_override``) until the
sensor reports the same values in a later snapshot (``state`` becomes ``applied``) or
rejects its command (``rejected``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import String, and_, cast, delete, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from otwatch.central.store.db import dialect_insert
from otwatch.central.store.models_devices import CentralDevice

__all__ = [
    "DETAIL_KEYS",
    "OVERRIDE_KEYS",
    "SORT_KEYS",
    "DeviceQuery",
    "apply_snapshots",
    "delete_device",
    "device_by_sensor_id",
    "devices_by_address",
    "get_device",
    "ip_hex",
    "ip_range",
    "list_devices",
    "override_rejected",
    "set_central_override",
    "upsert_device",
]

DETAIL_KEYS: Final = ("facts", "names", "mac_history", "services", "peer_addresses", "evidence")
"""Snapshot keys kept in the ``detail`` column."""
OVERRIDE_KEYS: Final = ("name", "type", "purdue_level")
SORT_KEYS: Final = {
    "name": CentralDevice.name, "ip": CentralDevice.ip_hex, "mac": CentralDevice.mac,
    "vendor": CentralDevice.vendor, "model": CentralDevice.model,
    "firmware": CentralDevice.firmware, "type": CentralDevice.device_type,
    "purdue_level": CentralDevice.purdue_level, "first_seen": CentralDevice.first_seen_ns,
    "last_seen": CentralDevice.last_seen_ns, "sensor": CentralDevice.sensor,
    "protocols": cast(CentralDevice.protocols, String), "learned": CentralDevice.learned,
}  # fmt: skip
"""Sort key → what it orders by. Protocols sort by the list's JSON text (so by its first
protocol, the sensor sends them sorted; an empty list last); learned: new devices first."""
_OVERRIDE_COLUMNS: Final = {"name": "name_override", "type": "type_override",
                            "purdue_level": "purdue_override"}  # fmt: skip
_SHOWN_COLUMNS: Final = {"name": "name", "type": "device_type", "purdue_level": "purdue_level"}


def ip_hex(ip: str | None) -> str | None:
    """32 hex digits of the address (IPv4 as IPv4-mapped IPv6); None if not an address."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        address = ipaddress.IPv6Address(f"::ffff:{address}")
    return f"{int(address):032x}"


def ip_range(cidr: str) -> tuple[str, str]:
    """The ``ip_hex`` bounds of a subnet; raises ``ValueError`` for a bad one."""
    network = ipaddress.ip_network(cidr.strip(), strict=False)
    low, high = network[0], network[-1]
    return ip_hex(str(low)) or "", ip_hex(str(high)) or ""


@dataclass(frozen=True)
class DeviceQuery:
    """The filters of a device list; empty means no condition."""

    search: str | None = None
    """Substring of name, IP, MAC, vendor or model (any case)."""
    types: tuple[str, ...] = ()
    vendor: str | None = None
    """Substring of the vendor (any case)."""
    protocols: tuple[str, ...] = ()
    subnet: str | None = None
    sensors: tuple[str, ...] = ()
    since_ns: int | None = None
    """Last seen at or after."""
    new_only: bool = False
    """Only devices that were not learned in the baseline."""


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(q: DeviceQuery) -> list[ColumnElement[bool]]:
    d = CentralDevice
    out: list[ColumnElement[bool]] = []
    if q.search:
        like = _like(q.search)
        out.append(
            or_(*(c.ilike(like, escape="\\") for c in (d.name, d.ip, d.mac, d.vendor, d.model)))
        )
    if q.types:
        out.append(d.device_type.in_(q.types))
    if q.vendor:
        out.append(d.vendor.ilike(_like(q.vendor), escape="\\"))
    if q.protocols:
        text = cast(d.protocols, String)
        out.append(or_(*(text.like(_like(f'"{p}"'), escape="\\") for p in q.protocols)))
    if q.subnet:
        low, high = ip_range(q.subnet)
        out.append(and_(d.ip_hex >= low, d.ip_hex <= high))
    if q.sensors:
        out.append(d.sensor.in_(q.sensors))
    if q.since_ns is not None:
        out.append(d.last_seen_ns >= q.since_ns)
    if q.new_only:
        out.append(d.learned.is_(False))
    return out


def list_devices(
    session: Session, q: DeviceQuery, *, sort: str = "ip", descending: bool = False,
    limit: int = 100, offset: int = 0,
) -> tuple[list[CentralDevice], int]:  # fmt: skip
    """A page of the devices ``q`` selects, sorted (nulls last, then by id), and the total."""
    column = SORT_KEYS[sort]
    order = column.desc() if descending else column.asc()
    where = _conditions(q)
    stmt = (
        select(CentralDevice)
        .where(*where)
        .order_by(order.nulls_last(), CentralDevice.id.desc() if descending else CentralDevice.id)
        .limit(limit)
        .offset(offset)
    )
    total = session.scalar(select(func.count()).select_from(CentralDevice).where(*where)) or 0
    return list(session.scalars(stmt)), int(total)


def get_device(session: Session, device_pk: int) -> CentralDevice | None:
    return session.get(CentralDevice, device_pk)


def device_by_sensor_id(session: Session, sensor_id: str, device_id: int) -> CentralDevice | None:
    """The device a sensor knows by its own id."""
    stmt = select(CentralDevice).where(
        CentralDevice.sensor == sensor_id, CentralDevice.device_id == device_id
    )
    return session.scalars(stmt.limit(1)).first()


def devices_by_address(
    session: Session, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], CentralDevice]:
    """The devices of ``(sensor, ip)`` pairs, the most recently seen per pair (one query)."""
    wanted = set(pairs)
    if not wanted:
        return {}
    stmt = (
        select(CentralDevice)
        .where(
            CentralDevice.sensor.in_({s for s, _ in wanted}),
            CentralDevice.ip.in_({ip for _, ip in wanted}),
        )
        .order_by(CentralDevice.last_seen_ns)
    )
    out: dict[tuple[str, str], CentralDevice] = {}
    for row in session.scalars(stmt):
        pair = (row.sensor, row.ip or "")
        if pair in wanted:
            out[pair] = row  # the newest wins
    return out


def _columns(snapshot: dict[str, Any]) -> dict[str, Any]:
    overrides = snapshot.get("overrides") or {}
    return {
        "device_id": snapshot["id"], "ip": snapshot.get("ip"), "ip_hex": ip_hex(snapshot.get("ip")),
        "mac": snapshot.get("mac"), "vlan": snapshot.get("vlan"), "name": snapshot.get("name"),
        "vendor": snapshot.get("vendor"), "model": snapshot.get("model"),
        "firmware": snapshot.get("firmware"), "device_type": snapshot.get("type") or "Unknown",
        "purdue_level": snapshot.get("purdue_level"),
        "type_reason": snapshot.get("type_reason") or "",
        "protocols": list(snapshot.get("protocols") or ()), "peers": snapshot.get("peers", 0),
        "learned": bool(snapshot.get("learned")), "first_seen_ns": snapshot["first_seen_ns"],
        "last_seen_ns": snapshot["last_seen_ns"], "packets_in": snapshot.get("packets_in", 0),
        "packets_out": snapshot.get("packets_out", 0), "bytes_in": snapshot.get("bytes_in", 0),
        "bytes_out": snapshot.get("bytes_out", 0), "name_override": overrides.get("name"),
        "type_override": overrides.get("type"),
        "purdue_override": overrides.get("purdue_level"),
        "detail": {k: snapshot.get(k) or ([] if k != "names" else {}) for k in DETAIL_KEYS},
    }  # fmt: skip


def upsert_device(
    session: Session, sensor_id: str, snapshot: dict[str, Any], now: int
) -> CentralDevice:
    """Insert or update the sensor's device from its snapshot; a pending central override
    the snapshot carries becomes ``applied``.

    The insert is ``ON CONFLICT DO NOTHING``: another central instance inserting the same
    new device meanwhile makes this one wait for its commit and then update that row, where
    a plain INSERT would fail the whole batch (to be delivered again)."""
    columns = _columns(snapshot)
    insert = dialect_insert(session.get_bind().dialect.name)
    new_id = session.scalar(
        insert(CentralDevice)
        .values(sensor=sensor_id, key=snapshot["key"], received_ns=now, **columns)
        .on_conflict_do_nothing(index_elements=["sensor", "key"])
        .returning(CentralDevice.id)
    )
    if new_id is not None:
        inserted = session.get(CentralDevice, new_id)
        assert inserted is not None  # just inserted in this transaction
        return inserted
    row = session.scalars(
        select(CentralDevice).where(
            CentralDevice.sensor == sensor_id, CentralDevice.key == snapshot["key"]
        )
    ).one()
    for name, value in columns.items():
        setattr(row, name, value)
    row.received_ns = now
    pending = row.central_override
    if pending and pending.get("state") == "pending" and _carried(row, pending["set"]):
        row.central_override = {**pending, "state": "applied", "applied_ns": now}
    return row


def _carried(row: CentralDevice, wanted: dict[str, Any]) -> bool:
    return all(getattr(row, _OVERRIDE_COLUMNS[k]) == v for k, v in wanted.items())


def apply_snapshots(
    session: Session, sensor_id: str, snapshots: Sequence[tuple[int, dict[str, Any] | None]],
    now: int,
) -> None:  # fmt: skip
    """A sensor's device events in order: ``(device id, snapshot)`` upserts the device,
    ``(device id, None)`` forgets it (the sensor forgot it)."""
    for device_id, snapshot in snapshots:
        if snapshot is None:
            delete_device(session, sensor_id, device_id)
        else:
            upsert_device(session, sensor_id, snapshot, now)


def delete_device(session: Session, sensor_id: str, device_id: int) -> int:
    """Forget a device the sensor forgot; returns how many rows went."""
    result = session.execute(
        delete(CentralDevice)
        .where(CentralDevice.sensor == sensor_id, CentralDevice.device_id == device_id)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def set_central_override(
    session: Session, row: CentralDevice, changes: dict[str, Any], *, actor: str, now: int,
    command_id: str,
) -> dict[str, Any]:  # fmt: skip
    """Record an override made centrally (pending until the sensor carries it); returns the
    values the changed keys had before."""
    unknown = set(changes) - set(OVERRIDE_KEYS)
    if unknown:
        raise ValueError(f"unknown override keys {', '.join(sorted(unknown))}")
    before = {k: getattr(row, _OVERRIDE_COLUMNS[k]) for k in changes}
    earlier = row.central_override or {}
    wanted = dict(earlier.get("set", {})) if earlier.get("state") == "pending" else {}
    wanted.update(changes)
    row.central_override = {
        "set": wanted, "by": actor, "at_ns": now, "command_id": command_id, "state": "pending",
    }  # fmt: skip
    # shown (listed, searched, sorted) at once; the sensor's snapshot confirms it
    for key, value in changes.items():
        setattr(row, _OVERRIDE_COLUMNS[key], value)
        if value is not None:
            setattr(row, _SHOWN_COLUMNS[key], value)
    if changes.get("type") is not None:
        row.type_reason = "set by a user"
    return before


def override_rejected(session: Session, sensor_id: str, command_id: str, reason: str) -> None:
    """The sensor refused a central override: say so on the device."""
    stmt = select(CentralDevice).where(
        CentralDevice.sensor == sensor_id, CentralDevice.central_override.is_not(None)
    )
    for row in session.scalars(stmt):
        override = row.central_override or {}
        if override.get("command_id") == command_id and override.get("state") == "pending":
            row.central_override = {**override, "state": "rejected", "reason": reason[:512]}
