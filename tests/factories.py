"""Builders shared by tests: detections, alerts, frames."""

from __future__ import annotations

from typing import Any

from otwatch.agent.catalog import load_catalog
from otwatch.agent.engines.detection import Detection, DetectionFactory

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
