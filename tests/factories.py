"""Builders shared by tests: detections, alerts, frames."""

from __future__ import annotations

from typing import Any

from otwatch.agent.engines.detection import Detection, DetectionFactory
from otwatch.alerts.catalog import load_catalog

T0 = 1_790_000_000 * 1_000_000_000  # 2026-09-21, an arbitrary fixed traffic time


def detection(
    type_id: str = "unpermitted_usage_of_modbus_function_code",
    ts_ns: int = T0,
    src: str = "192.0.2.10",
    dst: str = "198.51.100.20",
    **fields: Any,
) -> Detection:
    factory = DetectionFactory(load_catalog())
    fields.setdefault("protocol", "modbus")
    return factory.make(
        type_id,
        ts_ns,
        f"{src} did something to {dst}",
        source_address=src,
        destination_address=dst,
        **fields,
    )


def eth(src: str = "02:00:00:00:00:01", dst: str = "02:00:00:00:00:02"):
    """An Ethernet header with explicit MACs (never let Scapy resolve one on the network)."""
    from scapy.layers.l2 import Ether

    return Ether(src=src, dst=dst)


def ether_frames(packets, start_ns: int = T0, step_ns: int = 1_000_000):
    """Scapy packets → pipeline input tuples ``(ts_ns, wire_len, linktype, bytes)``."""
    out = []
    for i, pkt in enumerate(packets):
        data = bytes(pkt)
        out.append((start_ns + i * step_ns, len(data), 1, data))
    return out


def modbus_request(
    src: str,
    dst: str,
    function: int,
    body: bytes = b"\x00\x00\x00\x01",
    tid: int = 1,
    sport: int = 40000,
):
    """An Ethernet/IPv4/TCP frame carrying one Modbus/TCP request (MBAP + PDU)."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    pdu = bytes([function]) + body
    mbap = tid.to_bytes(2, "big") + b"\x00\x00" + (len(pdu) + 1).to_bytes(2, "big") + b"\x01"
    return (
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src=src, dst=dst)
        / TCP(sport=sport, dport=502, flags="PA")
        / (mbap + pdu)
    )


def modbus_response(
    src: str, dst: str, function: int, body: bytes, tid: int = 1, dport: int = 40000
):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    pdu = bytes([function]) + body
    mbap = tid.to_bytes(2, "big") + b"\x00\x00" + (len(pdu) + 1).to_bytes(2, "big") + b"\x01"
    return (
        Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
        / IP(src=src, dst=dst)
        / TCP(sport=502, dport=dport, flags="PA")
        / (mbap + pdu)
    )


def run_pipeline(store, frames, *, learning_period_ns: int | None = None, settings=None):
    """Feed frames through a fresh pipeline on ``store``; returns the pipeline after flush."""
    from otwatch.agent.alerts.manager import AlertManager
    from otwatch.agent.pipeline import Pipeline

    manager = AlertManager(store, load_catalog(), sensor_id="test")
    pipeline = Pipeline(manager, learning_period_ns=learning_period_ns, settings=settings)
    pipeline.start_segment()
    for frame in frames:
        pipeline.process(*frame)
    pipeline.flush()
    return pipeline


def alert_types(store) -> dict[str, int]:
    """Alert type id → total detections, from the store."""
    from sqlalchemy import func, select

    from otwatch.agent.store.models import Alert

    with store.session() as s:
        rows = s.execute(
            select(Alert.type_id, func.sum(Alert.detections)).group_by(Alert.type_id)
        ).all()
    return {type_id: int(total) for type_id, total in rows}
