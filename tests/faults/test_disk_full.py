"""Disk full under the live agent: its data directory on a small tmpfs mounted for the test.

``otwatch agent run`` captures in a network namespace (traffic injected with tcpreplay over a
veth pair, addresses from 192.0.2.0/24 and 198.51.100.0/24), its ring allowed half of the
filesystem. A ballast file (other data on the disk) leaves 4 MiB free; then traffic much
larger than that arrives. The ring must evict its oldest segments and capture must go on,
``otwatch pcap status`` must report the disk-full events, SQLite must stay intact. Once the
ballast is deleted (space returns) the next traffic must be written in full, with no new
disk-full event, without restarting anything. A clean stop then leaves every segment closed,
indexed and readable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.gen_capture import modbus_polling
from otwatch.agent.capture.config import MiB
from tests.faults.harness import Plan, check_ring, integrity, plans, report
from tests.integration.sync_procs import wait_until
from tests.integration.test_live_capture import Agent, pair  # noqa: F401

pytestmark = pytest.mark.netns
SMALL = 40_000
"""Packets of the burst sent once space has returned."""


@pytest.fixture
def small_fs(tmp_path):
    """A 32 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "data"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0755", "tmpfs",
                             str(mount)], capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def pcap_status(data_dir: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "otwatch.cli", "--data-dir", str(data_dir), "pcap", "status",
         "--format", "json"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: Path, leave: int) -> Path:
    """A ballast file that leaves about ``leave`` bytes free."""
    ballast = path / "ballast"
    size = max(0, free_bytes(path) - leave)
    with open(ballast, "wb") as f:
        chunk = b"\0" * MiB
        while size > 0:
            f.write(chunk[: min(size, MiB)])
            size -= MiB
    return ballast


def settle(data_dir: Path, more_than: dict | None = None) -> dict:
    """The ring figures (plus frames received) once they stop moving (saved every second)."""
    last: dict = {}

    def steady() -> dict | None:
        nonlocal last
        status = pcap_status(data_dir)
        ring = {**status["ring"], "received": sum(
            i["received"] for i in status["capture"]["interfaces"].values()
        )}  # fmt: skip
        ring["written_frames"] = ring["written_frames"] or 0
        moved = more_than is not None and ring["received"] <= more_than["received"]
        same = {k: ring[k] for k in ("received", "written_frames")} == {
            k: last.get(k) for k in ("received", "written_frames")
        }
        last = ring
        return ring if same and not moved else None

    try:
        return wait_until(lambda: (time.sleep(1.2), steady())[1], 90, "figures to settle")
    except AssertionError:
        raise AssertionError(f"capture figures did not settle: {last}") from None


def one_round(pair, data_dir: Path, burst: Path, small: Path) -> dict:  # noqa: F811
    agent = Agent(
        pair, data_dir, "--ring-segment-size", "1MiB", "--ring-max-percent", "50",
        "--ring-max-size", "1GiB", "--no-promisc",
        # Evidence budgets must fit the disk: nothing bounds them by free space (see report).
        "--evidence-max-size", "2MiB", "--evidence-alert-max-size", "256KiB",
    )  # fmt: skip
    agent.wait_ready()
    try:
        ballast = fill(data_dir, leave=4 * MiB)
        pair.send(burst, "--topspeed")
        status = wait_until(
            lambda: (s := pcap_status(data_dir))["ring"]["disk_full"] > 0 and s,
            60,
            "the agent to report disk full",
        )
        assert status["ring"]["last_eviction_ns"] is not None  # the ring evicted its oldest
        assert agent.proc.poll() is None  # capture goes on
        assert integrity(data_dir / "otwatch.db") == "ok"
        # Space returns: the next burst is written in full, nothing restarted.
        ballast.unlink()
        quiet = settle(data_dir)
        pair.send(small, "--topspeed")
        after = settle(data_dir, more_than=quiet)
        received = after["received"] - quiet["received"]
        assert received > 0.9 * SMALL, (quiet, after)
        assert after["written_frames"] - quiet["written_frames"] == received, (quiet, after)
        assert after["disk_full"] == quiet["disk_full"], (quiet, after)
        assert after["dropped_frames"] == quiet["dropped_frames"], (quiet, after)
        assert agent.proc.poll() is None
    except AssertionError as exc:
        _code, err = agent.stop()
        raise AssertionError(f"{exc}\nagent stderr: {err[-3000:]}") from None
    code, err = agent.stop()
    assert code == 0, err[-2000:]
    assert integrity(data_dir / "otwatch.db") == "ok"
    segments, packets = check_ring(data_dir)
    assert packets >= SMALL
    return {
        "disk_full_events": after["disk_full"],
        "dropped_frames": after["dropped_frames"],
        "segments_after": segments,
        "packets_kept": packets,
    }


@pytest.mark.parametrize("plan", plans(Plan(1, 80_000), Plan(5, 200_000)))
def test_disk_full_ring_evicts_and_recovers(pair, small_fs, tmp_path, plan):  # noqa: F811
    data_dir = small_fs
    burst = tmp_path / "burst.pcap"  # ~10 MiB: several times the space left
    modbus_polling(str(burst), plan.events, 20, plan.seed)
    small = tmp_path / "small.pcap"  # ~3.5 MiB: fits in the space that returns
    modbus_polling(str(small), SMALL, 20, plan.seed + 1)
    totals = {"disk_full_events": 0, "dropped_frames": 0, "segments_after": 0, "packets_kept": 0}
    for _ in range(plan.kills):  # independent rounds: a fresh agent on an emptied filesystem
        for leftover in data_dir.iterdir():
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        figures = one_round(pair, data_dir, burst, small)
        for key in totals:
            totals[key] += figures[key]
    report(
        "disk-full",
        rounds=plan.kills,
        packets_per_burst=plan.events,
        packets_after_recovery=SMALL,
        integrity="ok",
        **totals,
    )
