"""``kill -9`` of the agent at seeded random moments of ``otwatch agent replay --ring``.

Each round replays a generated Modbus capture (alerts, detections and PCAP ring segments of
1 MiB) and kills the process at a random moment: while it decodes, flushes alerts, rotates
segments or cuts evidence. After each kill: ``PRAGMA integrity_check`` is ok, every alert
that was committed before the kill is still there with at least the detections it had, and
once the ring is repaired (what the next start does) every segment file is indexed, closed
and readable to its last complete record, with the packet count its index row says.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from bench.gen_capture import modbus_polling
from tests.faults.harness import Plan, check_ring, integrity, kill9, plans, report
from tests.integration.sync_procs import OTWATCH


def committed(db: Path) -> dict[int, tuple[int, str]]:
    """Alert id → (detections, status) as committed now (a reader of our own)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return {i: (d, s) for i, d, s in conn.execute("SELECT id, detections, status FROM alerts")}
    finally:
        conn.close()


def replay(data_dir: Path, capture: Path) -> subprocess.Popen:
    args = [str(OTWATCH), "--data-dir", str(data_dir), "agent", "replay", "--ring",
            "--ring-segment-size", "1MiB", "--sensor-id", "s1", str(capture)]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("plan", plans(Plan(3, 100_000), Plan(20, 300_000)))
def test_agent_kill9_during_replay(tmp_path, plan):
    rng = random.Random(f"agent-{plan.seed}")
    data_dir = tmp_path / "data"
    db = data_dir / "otwatch.db"
    capture = tmp_path / "plant.pcap"
    modbus_polling(str(capture), plan.events, 10, plan.seed)

    # A clean run first: the store exists, and its duration bounds the kill moments.
    started = time.monotonic()
    proc = replay(data_dir, capture)
    _out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    clean_s = time.monotonic() - started
    alerts = len(committed(db))
    assert alerts > 0

    kills = ring_checks = early = 0
    moments = []
    bound = clean_s
    while kills < plan.kills:
        before = committed(db)
        proc = replay(data_dir, capture)
        moment = rng.uniform(0.3, bound)
        time.sleep(moment)
        acked = committed(db)  # committed before the kill: must all survive it
        if not kill9(proc):  # it finished first (a rerun adds no evidence): aim earlier
            assert proc.wait() == 0, proc.stderr.read()
            proc.stderr.close()
            early += 1
            bound = max(0.5, moment * 0.8)
            assert early < 20
            continue
        proc.stderr.close()
        kills += 1
        moments.append(round(moment, 2))
        assert integrity(db) == "ok"
        after = committed(db)
        for alert_id, (detections, status) in {**before, **acked}.items():
            assert alert_id in after, f"committed alert {alert_id} lost"
            assert after[alert_id][0] >= detections and after[alert_id][1] == status
        segments, packets = check_ring(data_dir)
        ring_checks += segments

    proc = replay(data_dir, capture)  # and a restart completes normally
    _out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert integrity(db) == "ok"
    segments, packets = check_ring(data_dir)
    assert packets > 0
    report(
        "agent-kill9",
        kills=kills,
        packets_per_replay=plan.events,
        kill_moments_s=moments,
        clean_replay_s=round(clean_s, 1),
        runs_finished_before_the_kill=early,
        alerts=len(committed(db)),
        segments_checked=ring_checks + segments,
        integrity="ok",
        lost=0,
    )
