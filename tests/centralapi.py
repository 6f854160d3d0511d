"""Builders for central API tests: alerts straight into the central store, tokens, a client."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select

from otwatch.central.store import alerts as alert_store
from otwatch.central.store import sensors as sensor_store
from otwatch.central.store.tokens import create_token
from otwatch.sync.protocol.messages import VERSION, encode_pcap_chunk
from otwatch.sync.protocol.topics import up_topic
from tests.factories import MIN, T0


def snapshot(alert_id: int, **over: Any) -> dict[str, Any]:
    """A sensor's ``AlertSnapshot`` dict (what the sync sends), with overrides."""
    row = {
        "id": alert_id,
        "type_id": "unpermitted_usage_of_modbus_function_code",
        "name": "Unpermitted Usage of Modbus Function Code",
        "engine": "policy_violation",
        "category": "Unauthorized Communication Behavior",
        "severity": "medium",
        "status": "new",
        "close_reason": None,
        "dedup_key": f"{alert_id:016x}",
        "source_address": f"192.0.2.{alert_id % 250 + 1}",
        "destination_address": "198.51.100.7",
        "source_mac": None,
        "destination_mac": None,
        "protocol": "modbus",
        "first_detection_ns": T0 + alert_id * MIN,
        "last_detection_ns": T0 + alert_id * MIN,
        "last_activity_ns": T0 + alert_id * MIN,
        "detections": 1,
        "site": "plant",
        "zone": "z1",
        "tactics": ["Impair Process Control"],
        "learnable": True,
        "mutable": False,
        "message": f"alert {alert_id}",
        "remediation": ["Check the PLC program."],
        "fields": {"function_code": 5},
        "status_hlc": 0,
        "severity_hlc": 0,
    }
    row.update(over)
    return row


def add_sensor(store, sensor_id: str, *, online: bool = True, site="plant", zone="z1") -> None:
    with store.session() as s:
        sensor_store.touch_sensor(s, sensor_id, T0, online=online, site=site, zone=zone)


def add_alerts(store, sensor_id: str, snapshots: list[dict[str, Any]], now: int = T0) -> None:
    with store.session() as s:
        known = select(sensor_store.Sensor.id).where(sensor_store.Sensor.id == sensor_id)
        if s.scalar(known) is None:  # not s.get: works on older revisions' sensors tables
            sensor_store.touch_sensor(s, sensor_id, now, online=True, site="plant", zone="z1")
        alert_store.upsert_alerts(s, [alert_store.alert_row(sensor_id, x, now) for x in snapshots])


def token(store, name: str, role: str) -> str:
    with store.session() as s:
        return create_token(s, name, role)


def pcap_chunks(
    data: bytes, request_id: str, sensor: str = "s1", alert_id: int = 1, chunk_bytes: int = 1000
) -> list[tuple[str, bytes]]:
    """(topic, payload) of every ``up/pcap`` chunk of ``data``, as a sensor sends them."""
    sha = hashlib.sha256(data).hexdigest()
    total = max(1, -(-len(data) // chunk_bytes))
    header = {"v": VERSION, "sensor_id": sensor, "request_id": request_id,
              "alert_id": alert_id, "total": total, "chunk_bytes": chunk_bytes,
              "size": len(data), "sha256": sha}  # fmt: skip
    return [
        (
            up_topic(sensor, "pcap", request_id),
            encode_pcap_chunk(
                {**header, "index": i}, data[i * chunk_bytes : (i + 1) * chunk_bytes]
            ),
        )
        for i in range(total)
    ]
