"""The OT-engines benchmark runs end to end on a small capture and prints its ratio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "ot_engines.py"


def test_bench_prints_both_rates_and_a_ratio() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "3000", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BENCH.parents[1],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("best baseline") and "ratio" in last
    assert "with OT engines" in done.stdout
