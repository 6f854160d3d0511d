"""Shared parts of the fault campaign (issue 8): how many faults a run injects, SIGKILL,
SQLite integrity, the record of what central acknowledged, and a figures line per run.

Each fault test has a short version in the default run and a long one behind
``@pytest.mark.slow``. The long counts can be changed without editing the tests:
``OTWATCH_FAULT_KILLS`` (faults per run) and ``OTWATCH_FAULT_EVENTS`` (events per run).
Every run prints one ``FAULTS …`` line with its figures (``pytest -s`` shows it); those lines
are what ``docs/reliability.md`` reports.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from otwatch.agent.capture.ring import resolve_path
from otwatch.agent.capture.ring_repair import repair_ring
from otwatch.agent.capture.ring_segments import iter_segment, scan_segment
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models_pcap import PcapSegment
from otwatch.agent.store.state import get_state
from otwatch.sync.outbox import ACKED_HW, max_seq

__all__ = [
    "AckLog",
    "Plan",
    "check_ring",
    "integrity",
    "kill9",
    "plans",
    "report",
]


@dataclass(frozen=True)
class Plan:
    """How hard one run pushes: ``kills`` faults while ``events`` events go through."""

    kills: int
    events: int
    seed: int = 8

    @property
    def label(self) -> str:
        return f"{self.kills}x{self.events}"


def plans(short: Plan, long: Plan) -> list[Any]:
    """``[short, long]`` as pytest params; the long one is slow, its counts overridable."""
    long = Plan(
        int(os.environ.get("OTWATCH_FAULT_KILLS", long.kills)),
        int(os.environ.get("OTWATCH_FAULT_EVENTS", long.events)),
        long.seed,
    )
    return [
        pytest.param(short, id="short"),
        pytest.param(long, id="long", marks=pytest.mark.slow),
    ]


def kill9(proc: subprocess.Popen | None) -> bool:
    """SIGKILL a child and reap it; False when it had already exited."""
    if proc is None or proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` of a SQLite file, read by a connection of our own."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return "; ".join(r[0] for r in rows)


class AckLog:
    """What central has acknowledged, from the sensor's side.

    The sensor deletes acknowledged outbox rows as soon as the acknowledgement arrives, so the
    test notes which alert each sequence number carries as it writes the rows (``write``);
    ``acked`` then maps the sensor's persisted high-water mark back to those alerts.
    """

    def __init__(self, store) -> None:
        self.store = store
        self.rows: list[tuple[int, int]] = []

    def write(self, fn: Callable[[], list[int]]) -> int:
        """Run ``fn``, which adds one outbox row per alert id it returns, in that order (the
        test must be the only writer of outbox rows meanwhile: checked). Returns the count."""
        with self.store.session() as s:
            before = max_seq(s)
        alert_ids = fn()
        with self.store.session() as s:
            after = max_seq(s)
        assert after == before + len(alert_ids), "another process wrote outbox rows"
        self.rows += [(before + 1 + k, alert_id) for k, alert_id in enumerate(alert_ids)]
        return len(alert_ids)

    def hw(self) -> int:
        with self.store.session() as s:
            return int(get_state(s, ACKED_HW, 0))

    def acked(self) -> tuple[int, set[int]]:
        """The high-water mark and the alerts of every event at or below it."""
        hw = self.hw()
        return hw, {alert_id for seq, alert_id in self.rows if seq <= hw}


def check_ring(data_dir: Path) -> tuple[int, int]:
    """Repair as a restart does, then: every file indexed and every row's file complete.
    Returns (segments, packets)."""
    ring_dir = data_dir / "pcap" / "ring"
    store = open_store(data_dir)
    try:
        repair_ring(store, ring_dir)
        with store.session() as s:
            rows = [(r.path, r.closed, r.packets, r.bytes) for r in s.query(PcapSegment)]
    finally:
        store.close()
    indexed = {resolve_path(path, data_dir).resolve() for path, *_ in rows}
    on_disk = {p.resolve() for p in ring_dir.glob("*.pcap")}
    assert on_disk == indexed, f"unindexed {on_disk - indexed}, missing {indexed - on_disk}"
    packets = 0
    for path, closed, count, size in rows:
        file = resolve_path(path, data_dir)
        scan = scan_segment(file)
        assert closed and scan is not None, path
        assert (scan.packets, scan.valid_end, file.stat().st_size) == (count, size, size), path
        assert sum(1 for _ in iter_segment(file)) == count
        packets += count
    return len(rows), packets


def report(name: str, **figures: Any) -> None:
    """One greppable line of figures per run (for docs/reliability.md)."""
    print(f"\nFAULTS {name} {json.dumps(figures, sort_keys=True)}")
