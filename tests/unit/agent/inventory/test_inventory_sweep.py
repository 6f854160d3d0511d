"""A SYN sweep does not fill the inventory: only the addresses that answer become devices."""

from __future__ import annotations

from scapy.utils import wrpcap
from sqlalchemy import select

from otwatch.agent.replay import replay
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models_devices import DeviceRow
from tests.factories import SEC, T0, syn, synack, tcp

SCANNER = "10.1.0.9"


def test_only_targets_that_answer_become_devices(tmp_path) -> None:
    frames = [syn(SCANNER, f"10.2.0.{i}", 502) for i in range(1, 41)]
    frames.append(synack("10.2.0.5", SCANNER, 502))  # listening
    frames.append(tcp("10.2.0.6", SCANNER, 502, 40000, flags="RA"))  # closed port: it exists
    for i, frame in enumerate(frames):
        frame.time = (T0 + i * SEC // 100) / 1e9
    capture = tmp_path / "sweep.pcap"
    wrpcap(str(capture), frames)
    store = open_store(tmp_path / "data")
    try:
        replay([capture], store, learning_period_ns=0)
        with store.session() as session:
            rows = {row.key: row for row in session.scalars(select(DeviceRow))}
    finally:
        store.close()
    assert set(rows) == {SCANNER, "10.2.0.5", "10.2.0.6"}
    # the scanner still names every address it tried as a peer
    assert len(rows[SCANNER].peers) == 40
    assert SCANNER in rows["10.2.0.5"].peers
