"""Pipeline throughput with and without the industrial-protocol engines, on Modbus polling.

Generates a Modbus/TCP polling capture with ``bench/gen_capture.py`` (learned during the first
minute of traffic), then replays it through ``otwatch.agent.replay.replay`` with the full
registry and with the registry minus the DNP3, S7, CIP, BACnet, IEC 104 and PROFINET engines
(the baseline), alternating runs in the same process. Prints packets per second and the
ratio to the baseline. Usage: ``python bench/ot_engines.py [PACKETS] [ROUNDS]``.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from pathlib import Path

import otwatch.agent.replay as replay_module
from otwatch.agent.engines.registry import ENGINES
from otwatch.agent.pipeline import Pipeline
from otwatch.agent.store.db import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_capture import modbus_polling

OT_ENGINES = frozenset({"dnp3", "s7", "cip", "bacnet", "iec104", "profinet"})
LEARNING_NS = 60 * 1_000_000_000


def run(capture: Path, data_dir: Path, engines: tuple) -> float:
    replay_module.Pipeline = functools.partial(Pipeline, engines=engines)  # type: ignore[misc]
    store = open_store(data_dir)
    try:
        started = time.perf_counter()
        summary = replay_module.replay([capture], store, learning_period_ns=LEARNING_NS)
        return summary.packets / (time.perf_counter() - started)
    finally:
        store.close()
        replay_module.Pipeline = Pipeline  # type: ignore[misc]


def main(argv: list[str]) -> int:
    packets = int(argv[0]) if argv else 200_000
    rounds = int(argv[1]) if len(argv) > 1 else 3
    baseline = tuple(e for e in ENGINES if e.name not in OT_ENGINES)
    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "polling.pcap"
        modbus_polling(capture, packets)
        best = {"baseline": 0.0, "with OT engines": 0.0}
        for i in range(rounds):
            for label, engines in (("baseline", baseline), ("with OT engines", ENGINES)):
                rate = run(capture, Path(tmp) / f"{label}{i}".replace(" ", "_"), engines)
                best[label] = max(best[label], rate)
                print(f"round {i + 1} {label:16s} {rate:>10,.0f} packets/s", flush=True)
    ratio = best["with OT engines"] / best["baseline"]
    print(f"best baseline {best['baseline']:,.0f} packets/s; with OT engines "
          f"{best['with OT engines']:,.0f} packets/s; ratio {ratio:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
