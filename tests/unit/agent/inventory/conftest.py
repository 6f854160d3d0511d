"""Helpers of the inventory tests: the inventory engine alone on a packet path."""

from __future__ import annotations

import subprocess
from pathlib import Path

from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.decode.flows import DEFAULT_MAX_FLOWS
from otwatch.agent.engines.base import Engine, EngineContext, NetworkScope
from otwatch.agent.engines.baseline import Baseline, LearningClock
from otwatch.agent.engines.detection import DetectionFactory
from otwatch.agent.inventory.engine import InventoryEngine
from otwatch.agent.pipeline import PacketPath
from otwatch.alerts.catalog import load_catalog

EVERYWHERE = ("0.0.0.0/0", "::/0")


def inventory_of(
    path: Path, subnets: tuple[str, ...] = EVERYWHERE, engines: tuple[type[Engine], ...] = ()
) -> InventoryEngine:
    """The inventory engine (after ``engines``) once every frame of ``path`` went through
    (every unicast address in scope by default)."""
    ctx = EngineContext(
        factory=DetectionFactory(load_catalog()),
        baseline=Baseline(),
        learning=LearningClock(0),
        scope=NetworkScope(subnets),
    )
    packet_path = PacketPath(
        ctx, (*engines, InventoryEngine), lambda det: None, max_flows=DEFAULT_MAX_FLOWS
    )
    with open_capture(path) as capture:
        for frame in capture:
            packet_path.process(*frame)
    engine = packet_path.engines[-1]
    assert isinstance(engine, InventoryEngine)
    engine.fold(packet_path.flows)
    return engine


def facts_of(engine: InventoryEngine, key: str, source: str) -> dict[str, str]:
    dev = engine.table.get(key)
    assert dev is not None, f"no device {key}"
    return {field: value for (field, src), (value, _ts) in dev.facts.items() if src == source}


def tshark(path: Path, display_filter: str, *fields: str, occurrence: str = "f") -> list[list[str]]:
    """One row per matching frame, one cell per field (its first occurrence by default,
    ``occurrence="l"`` for the last)."""
    argv = ["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields", "-E",
            f"occurrence={occurrence}"]  # fmt: skip
    for field in fields:
        argv += ["-e", field]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]
