"""Reading the device inventory: filters, records as the CLI and sync show them, groups."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, or_, select
from sqlalchemy.orm import Session

from otwatch.agent.store.models import Alert
from otwatch.agent.store.models_devices import DeviceRow
from otwatch.timeutil import format_iso

__all__ = [
    "DEVICE_REF_KEYS",
    "GROUPS",
    "DeviceFilter",
    "add_device_refs",
    "device_record",
    "group_devices",
    "ip_history_of_mac",
    "list_devices",
    "recent_alerts",
]

GROUPS = ("vendor", "type", "protocol")
DEVICE_REF_KEYS = ("source_device_id", "source_device", "destination_device_id",
                   "destination_device")  # fmt: skip
"""What :func:`add_device_refs` adds to an alert record, in this order."""


@dataclass(frozen=True)
class DeviceFilter:
    types: tuple[str, ...] = ()
    vendor: str | None = None
    """Case-insensitive substring of the vendor."""
    protocols: tuple[str, ...] = ()
    subnet: str | None = None
    since_ns: int | None = None
    new_only: bool = False
    """Only devices that were not part of the baseline (new since learning)."""
    search: str | None = None

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        return ipaddress.ip_network(self.subnet, strict=False) if self.subnet else None


def list_devices(session: Session, flt: DeviceFilter, limit: int | None = None) -> list[DeviceRow]:
    stmt = select(DeviceRow).order_by(DeviceRow.ip, DeviceRow.key)
    if flt.types:
        stmt = stmt.where(DeviceRow.device_type.in_(flt.types))
    if flt.vendor:
        stmt = stmt.where(DeviceRow.vendor.ilike(f"%{flt.vendor}%"))
    if flt.since_ns is not None:
        stmt = stmt.where(DeviceRow.last_seen_ns >= flt.since_ns)
    if flt.new_only:
        stmt = stmt.where(DeviceRow.learned.is_(False))
    if flt.search:
        like = f"%{flt.search}%"
        stmt = stmt.where(or_(DeviceRow.key.ilike(like), DeviceRow.name.ilike(like),
                              DeviceRow.mac.ilike(like), DeviceRow.model.ilike(like),
                              DeviceRow.vendor.ilike(like)))  # fmt: skip
    network = flt.network()
    wanted = set(flt.protocols)
    out = []
    for row in session.scalars(stmt):
        if wanted and not wanted & set(row.protocols or ()):
            continue
        if network is not None:
            try:
                if row.ip is None or ipaddress.ip_address(row.ip) not in network:
                    continue
            except ValueError:
                continue
        out.append(row)
        if limit is not None and len(out) >= limit:
            break
    return out


def device_record(row: DeviceRow, *, detail: bool = False) -> dict[str, Any]:
    """A device as the CLI's JSON/CSV and the sync message carry it."""
    record: dict[str, Any] = {
        "id": row.id, "key": row.key, "ip": row.ip, "mac": row.mac, "vlan": row.vlan,
        "name": row.name, "vendor": row.vendor, "model": row.model, "firmware": row.firmware,
        "type": row.device_type, "purdue_level": row.purdue_level, "type_reason": row.type_reason,
        "protocols": list(row.protocols or ()), "peers": len(row.peers or ()),
        "learned": row.learned, "first_seen": format_iso(row.first_seen_ns),
        "last_seen": format_iso(row.last_seen_ns), "packets_in": row.packets_in,
        "packets_out": row.packets_out, "bytes_in": row.bytes_in, "bytes_out": row.bytes_out,
        "overrides": {"name": row.name_override, "type": row.type_override,
                      "purdue_level": row.purdue_override},
    }  # fmt: skip
    if detail:
        record["facts"] = [{**fact, "seen": format_iso(fact["ts_ns"])} for fact in row.facts or ()]
        record["names"] = {name: v["source"] for name, v in (row.names or {}).items()}
        record["mac_history"] = [
            {"mac": mac, "first_seen": format_iso(first), "last_seen": format_iso(last)}
            for mac, (first, last) in sorted((row.macs or {}).items(), key=lambda kv: kv[1][0])
        ]
        record["services"] = list(row.services or ())
        record["peer_addresses"] = list(row.peers or ())
        record["evidence"] = sorted(row.evidence or {})
    return record


def ip_history_of_mac(session: Session, mac: str) -> list[dict[str, Any]]:
    """Every IP device a MAC was seen with, oldest first (a MAC that changed IP)."""
    text = cast(DeviceRow.macs, String)
    rows = session.scalars(select(DeviceRow).where(text.like(f'%"{mac}"%')))
    out = []
    for row in rows:
        span = (row.macs or {}).get(mac)
        if span and row.ip:
            out.append({"ip": row.ip, "first_seen": format_iso(span[0]),
                        "last_seen": format_iso(span[1]), "_first": span[0]})  # fmt: skip
    out.sort(key=lambda r: r.pop("_first"))
    return out


def group_devices(rows: Sequence[DeviceRow], by: str) -> list[dict[str, Any]]:
    counts: Counter[str] = Counter()
    for row in rows:
        if by == "protocol":
            counts.update(row.protocols or ["(none)"])
        else:
            counts[(row.vendor if by == "vendor" else row.device_type) or "(unknown)"] += 1
    return [{by: key, "devices": n} for key, n in counts.most_common()]


def recent_alerts(session: Session, ip: str | None, limit: int = 10) -> list[dict[str, Any]]:
    if ip is None:
        return []
    stmt = (
        select(Alert)
        .where(or_(Alert.source_address == ip, Alert.destination_address == ip))
        .order_by(Alert.last_detection_ns.desc())
        .limit(limit)
    )
    return [
        {
            "id": a.id,
            "name": a.name,
            "severity": a.severity,
            "status": a.status,
            "last_detection": format_iso(a.last_detection_ns),
        }
        for a in session.scalars(stmt)
    ]


def add_device_refs(session: Session, alerts: list[dict[str, Any]]) -> None:
    """Give alert records (``alert_to_dict``) their devices: ``source_device_id`` and
    ``source_device`` (the device's name where known, its address otherwise), the same for
    the destination. One query for the whole page."""
    addresses = {a.get(f"{side}_address") for a in alerts for side in ("source", "destination")}
    addresses.discard(None)
    known: dict[str, tuple[int, str | None]] = {}
    if addresses:
        stmt = select(DeviceRow.key, DeviceRow.id, DeviceRow.name).where(
            DeviceRow.key.in_(addresses)
        )
        known = {key: (id_, name) for key, id_, name in session.execute(stmt)}
    for alert in alerts:
        for side in ("source", "destination"):
            address = alert.get(f"{side}_address")
            ref = known.get(address) if address else None
            alert[f"{side}_device_id"] = ref[0] if ref else None
            alert[f"{side}_device"] = (ref[1] if ref and ref[1] else None) or address
