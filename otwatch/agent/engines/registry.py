"""The one ordered list of engines the pipeline runs."""

from __future__ import annotations

from otwatch.agent.engines.assets import NewAssetEngine
from otwatch.agent.engines.base import Engine
from otwatch.agent.engines.modbus import ModbusEngine
from otwatch.agent.engines.port_zero import PortZeroEngine
from otwatch.agent.engines.scans import PortScanEngine

__all__ = ["ENGINES", "implemented_types"]

ENGINES: tuple[type[Engine], ...] = (
    NewAssetEngine,
    PortScanEngine,
    PortZeroEngine,
    ModbusEngine,
)


def implemented_types() -> frozenset[str]:
    """Catalog type ids some engine can raise."""
    return frozenset().union(*(engine.type_ids for engine in ENGINES))
