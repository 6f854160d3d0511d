"""Central's device records (the API's JSON), a device's recent alerts, and the devices of
alert records (``source_device_id`` ...), resolved at read time.

A record has the sensor's ``devices list --format json`` fields (``devices_query.
device_record``) with central's own ``id`` (the URL's), plus ``sensor_device_id``,
``sensor_id``, ``site``/``zone`` of the sensor, and ``overrides`` with the central override's
who, when and state. A pending central override shows its values at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from otwatch.central.store import devices as device_store
from otwatch.central.store.models import Alert, Sensor
from otwatch.central.store.models_devices import CentralDevice
from otwatch.timeutil import format_iso

__all__ = ["RECENT_ALERTS", "add_device_refs", "device_details", "device_records"]

RECENT_ALERTS = 20


def _central_override(row: CentralDevice) -> dict[str, Any] | None:
    override = row.central_override
    if not override:
        return None
    return {
        "set": dict(override.get("set", {})),
        "by": override.get("by"),
        "at": format_iso(override.get("at_ns")),
        "state": override.get("state"),
        "reason": override.get("reason"),
        "command_id": override.get("command_id"),
    }


def _record(row: CentralDevice, placement: tuple[str, str] | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": row.id, "key": row.key, "ip": row.ip, "mac": row.mac, "vlan": row.vlan,
        "name": row.name, "vendor": row.vendor, "model": row.model, "firmware": row.firmware,
        "type": row.device_type, "purdue_level": row.purdue_level, "type_reason": row.type_reason,
        "protocols": list(row.protocols or ()), "peers": row.peers, "learned": row.learned,
        "first_seen": format_iso(row.first_seen_ns), "last_seen": format_iso(row.last_seen_ns),
        "packets_in": row.packets_in, "packets_out": row.packets_out, "bytes_in": row.bytes_in,
        "bytes_out": row.bytes_out, "sensor_device_id": row.device_id, "sensor_id": row.sensor,
        "site": placement[0] if placement else None, "zone": placement[1] if placement else None,
        "overrides": {"name": row.name_override, "type": row.type_override,
                      "purdue_level": row.purdue_override, "central": _central_override(row)},
    }  # fmt: skip
    pending = row.central_override
    if pending and pending.get("state") == "pending":
        wanted = pending.get("set", {})
        for key in device_store.OVERRIDE_KEYS:
            if key in wanted:
                record["overrides"][key] = wanted[key]
                if wanted[key] is not None:
                    record[key] = wanted[key]
        if "type" in wanted and wanted["type"] is not None:
            record["type_reason"] = "set by a user"
    return record


def device_records(session: Session, rows: list[CentralDevice]) -> list[dict[str, Any]]:
    sensors = {r.sensor for r in rows}
    placement: dict[str, tuple[str, str]] = {}
    if sensors:
        stmt = select(Sensor.id, Sensor.site, Sensor.zone).where(Sensor.id.in_(sensors))
        placement = {sid: (site, zone) for sid, site, zone in session.execute(stmt)}
    return [_record(r, placement.get(r.sensor)) for r in rows]


def _recent_alerts(session: Session, row: CentralDevice) -> list[dict[str, Any]]:
    if not row.ip:
        return []
    stmt = (
        select(Alert)
        .where(
            Alert.sensor == row.sensor,
            or_(Alert.source_address == row.ip, Alert.destination_address == row.ip),
        )
        .order_by(Alert.last_detection_ns.desc(), Alert.id.desc())
        .limit(RECENT_ALERTS)
    )
    out = []
    for alert in session.scalars(stmt):
        central_id = f"{alert.alert_id}-{alert.sensor}"
        out.append(
            {
                "id": central_id,
                "name": alert.name,
                "severity": alert.severity,
                "status": alert.status,
                "last_detection": format_iso(alert.last_detection_ns),
                "url": f"/alerts/{central_id}",
            }
        )
    return out


def device_details(session: Session, row: CentralDevice) -> dict[str, Any]:
    """The record with the sensor's detail sections, recent alerts and a pending override."""
    [record] = device_records(session, [row])
    detail = row.detail or {}
    record["facts"] = [
        {**fact, "seen": format_iso(fact.get("ts_ns"))} for fact in detail.get("facts") or ()
    ]
    record["names"] = dict(detail.get("names") or {})
    record["mac_history"] = [
        {"mac": span["mac"], "first_seen": format_iso(span["first_ns"]),
         "last_seen": format_iso(span["last_ns"])}
        for span in detail.get("mac_history") or ()
    ]  # fmt: skip
    for key in ("services", "peer_addresses", "evidence"):
        record[key] = list(detail.get(key) or ())
    record["recent_alerts"] = _recent_alerts(session, row)
    override = row.central_override
    record["pending_override"] = (
        _central_override(row) if override and override.get("state") == "pending" else None
    )
    return record


def _display(row: CentralDevice) -> str:
    pending = row.central_override or {}
    if pending.get("state") == "pending" and pending.get("set", {}).get("name"):
        return str(pending["set"]["name"])
    return row.name_override or row.name or row.ip or row.key


def add_device_refs(session: Session, alerts: list[dict[str, Any]]) -> None:
    """Give central alert records their devices: ``source_device_id``/``source_device`` and
    the same for the destination (central device id and display name; null when unknown).
    One query for the page; alerts name their sensor in ``sensor``."""
    pairs = [
        (a["sensor"], a[f"{side}_address"])
        for a in alerts
        for side in ("source", "destination")
        if a.get("sensor") and a.get(f"{side}_address")
    ]
    known = device_store.devices_by_address(session, pairs)
    for alert in alerts:
        for side in ("source", "destination"):
            address = alert.get(f"{side}_address")
            row = known.get((str(alert.get("sensor")), address)) if address else None
            alert[f"{side}_device_id"] = row.id if row else None
            alert[f"{side}_device"] = _display(row) if row else None
