"""Pipeline throughput with and without the network/IT engines, on Modbus polling traffic.

Generates a Modbus/TCP polling capture (``gen_capture.modbus_polling``: 5 clients polling one
server) into a temporary directory, then replays it through ``Pipeline`` in the same run:
with the original four engines (the baseline), with the baseline plus the network/IT
engines, and with the full registry. Each run learns on the first fifth of the capture and
times the rest (a plant after learning); the best of three interleaved rounds counts. Prints
packets per second and the ratio to the baseline.
Usage: ``python bench/network_engines.py [PACKETS]`` (default 200,000).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.engines import registry
from otwatch.agent.engines.assets import NewAssetEngine
from otwatch.agent.engines.modbus import ModbusEngine
from otwatch.agent.engines.network import NETWORK_ENGINES
from otwatch.agent.engines.port_zero import PortZeroEngine
from otwatch.agent.engines.scans import PortScanEngine
from otwatch.agent.pipeline import Pipeline
from otwatch.agent.store.db import open_store
from otwatch.alerts.catalog import load_catalog

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_capture import modbus_polling

BASELINE = (NewAssetEngine, PortScanEngine, PortZeroEngine, ModbusEngine)
ROUNDS = 3
LEARN_SHARE = 0.2
"""The first fifth of the capture is learned (not timed); the rest is the steady state."""


def measure(path: Path, data_dir: Path, engines: tuple, learn_share: float) -> float:
    """Packets per second after learning on the first ``learn_share`` of the capture."""
    records = list(open_capture(path))
    split = int(len(records) * learn_share)
    learning_ns = records[split][0] - records[0][0]
    store = open_store(data_dir)
    manager = AlertManager(store, load_catalog(), sensor_id="bench")
    pipeline = Pipeline(manager, learning_period_ns=learning_ns, engines=engines)
    process = pipeline.process
    for ts_ns, wire_len, linktype, data in records[:split]:
        process(ts_ns, wire_len, linktype, data)
    pipeline.flush()
    started = time.perf_counter()
    for ts_ns, wire_len, linktype, data in records[split:]:
        process(ts_ns, wire_len, linktype, data)
    pipeline.flush()
    elapsed = time.perf_counter() - started
    store.close()
    return (len(records) - split) / elapsed


def main() -> None:
    packets = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    runs = {
        "baseline (4 original engines)": BASELINE,
        "baseline + network/IT engines": BASELINE + NETWORK_ENGINES,
        "full registry": registry.ENGINES,
    }
    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "modbus_polling.pcap"
        modbus_polling(capture, packets)
        rates: dict[str, float] = dict.fromkeys(runs, 0.0)
        for j in range(ROUNDS):  # interleaved, so a busy moment hurts every variant alike
            for i, (label, engines) in enumerate(runs.items()):
                rate = measure(capture, Path(tmp) / f"d{i}{j}", engines, LEARN_SHARE)
                rates[label] = max(rates[label], rate)
        base = rates[next(iter(runs))]
        for label, engines in runs.items():
            print(
                f"{label:<32} {len(engines):>3} engines {rates[label]:>10,.0f} packets/s  "
                f"x{rates[label] / base:.2f}"
            )


if __name__ == "__main__":
    main()
