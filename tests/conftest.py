"""Shared fixtures: paths to the shared capture corpus, temporary stores."""

from __future__ import annotations

from pathlib import Path

import pytest
import scapy.layers.l2 as scapy_l2

# Network safety: building ``Ether()/IP(dst=...)`` without a destination MAC makes Scapy resolve
# it with a real ARP request on the host's interface. Tests must never transmit outside their
# own namespaces, so neighbour resolution is switched off for every test process: a frame
# without an explicit MAC gets the broadcast address instead.
scapy_l2.Neighbor.resolve = lambda self, l2inst, l3inst: None  # type: ignore[method-assign]

REPO = Path(__file__).resolve().parents[1]
PCAPS = REPO.parent / "shared" / "pcaps"


@pytest.fixture
def pcaps() -> Path:
    """The shared capture corpus; tests that need it skip with the reason when it is absent."""
    if not PCAPS.is_dir():
        pytest.skip(f"capture corpus not found at {PCAPS} (it ships beside the repo in shared/)")
    return PCAPS


@pytest.fixture
def store(tmp_path):
    from otwatch.agent.store.db import open_store

    s = open_store(tmp_path / "data")
    yield s
    s.close()
