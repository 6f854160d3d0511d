"""The one ordered list of engines the pipeline runs."""

from __future__ import annotations

from otwatch.agent.engines.assets import NewAssetEngine
from otwatch.agent.engines.bacnet import BacnetEngine
from otwatch.agent.engines.base import Engine
from otwatch.agent.engines.cip import CipEngine
from otwatch.agent.engines.dnp3 import Dnp3Engine
from otwatch.agent.engines.iec104 import Iec104Engine
from otwatch.agent.engines.modbus import ModbusEngine
from otwatch.agent.engines.network import NETWORK_ENGINES
from otwatch.agent.engines.port_zero import PortZeroEngine
from otwatch.agent.engines.profinet import ProfinetEngine
from otwatch.agent.engines.s7 import S7Engine
from otwatch.agent.engines.scans import PortScanEngine

__all__ = ["ENGINES", "implemented_types"]

ENGINES: tuple[type[Engine], ...] = (
    NewAssetEngine,
    PortScanEngine,
    PortZeroEngine,
    ModbusEngine,
    Dnp3Engine,
    S7Engine,
    CipEngine,
    BacnetEngine,
    Iec104Engine,
    ProfinetEngine,
    *NETWORK_ENGINES,
)


def implemented_types() -> frozenset[str]:
    """Catalog type ids some engine can raise."""
    return frozenset().union(*(engine.type_ids for engine in ENGINES))
