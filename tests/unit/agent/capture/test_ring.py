"""The rolling PCAP ring against a real SQLite store and real files (tshark/capinfos read them)."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from otwatch.agent.capture.config import RingConfig, ring_directory
from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.capture.ring import EVICTED_STATE, RingError, RingWriter
from otwatch.agent.capture.ring_repair import repair_ring
from otwatch.agent.capture.ring_segments import iter_segment, scan_segment
from otwatch.agent.store.models_pcap import PcapSegment
from otwatch.agent.store.state import get_state
from tests.factories import SEC, T0

MiB = 1 << 20


def frames(n: int, size: int = 100, start: int = T0, step: int = 1_000, tag: int = 0):
    out = []
    for i in range(n):
        data = struct.pack("!I", i) + bytes([tag]) * (size - 4)
        out.append((start + i * step, size + 10, 1, data))
    return out


def rows(store) -> list[PcapSegment]:
    with store.session() as s:
        return list(s.scalars(select(PcapSegment).order_by(PcapSegment.first_ns)))


def ring_config(store, **kw) -> RingConfig:
    kw.setdefault("max_percent", None)
    return RingConfig(directory=ring_directory(store.data_dir), **kw)


def read_all(store) -> list[tuple]:
    out = []
    for row in rows(store):
        out.extend(iter_segment(Path(store.data_dir) / row.path))
    return out


def capinfos(path: Path) -> tuple[int, int]:
    """(packets, data bytes) as capinfos counts them."""
    out = subprocess.run(
        ["capinfos", "-M", "-c", "-d", str(path)], capture_output=True, text=True, check=True
    ).stdout
    packets = int(out.split("Number of packets:")[1].split()[0])
    data = int(out.split("Data size:")[1].split()[0])
    return packets, data


def test_frames_round_trip_with_nanosecond_timestamps(store):
    ring = RingWriter(store, ring_config(store))
    sent = frames(1000, start=T0 + 123)
    ring.write_batch(sent, 1, True)
    ring.close()
    [row] = rows(store)
    assert row.closed and row.packets == 1000 and row.linktype == 1 and row.nanosecond
    assert (row.first_ns, row.last_ns) == (sent[0][0], sent[-1][0])
    path = Path(store.data_dir) / row.path
    assert row.bytes == path.stat().st_size == 24 + 1000 * (16 + 100)
    assert path.read_bytes()[:4] == struct.pack("<I", 0xA1B23C4D)
    assert read_all(store) == sent
    with open_capture(path) as cap:  # the project's own reader agrees
        assert list(cap) == sent and cap.nanosecond
    assert ring.stats.packets == 1000


def test_microsecond_sources_write_classic_microsecond_pcap(store):
    ring = RingWriter(store, ring_config(store))
    ring.write_batch(frames(3, step=SEC), 1, False)
    ring.close()
    [row] = rows(store)
    path = Path(store.data_dir) / row.path
    assert path.read_bytes()[:4] == struct.pack("<I", 0xA1B2C3D4)
    assert [f[0] for f in read_all(store)] == [T0, T0 + SEC, T0 + 2 * SEC]


@pytest.mark.skipif(not shutil.which("capinfos"), reason="capinfos (wireshark-common) missing")
def test_segments_open_cleanly_in_wireshark_tools(store):
    ring = RingWriter(store, ring_config(store, segment_bytes=MiB))
    ring.write_batch(frames(30_000, size=90), 1, True)
    ring.close()
    segments = rows(store)
    assert len(segments) >= 3
    total = [0, 0]
    for row in segments:
        packets, data = capinfos(Path(store.data_dir) / row.path)
        assert packets == row.packets
        total[0] += packets
        total[1] += data
    assert total == [30_000, 30_000 * 100]  # capinfos counts the wire length (90 + 10)
    tshark = subprocess.run(
        ["tshark", "-r", str(Path(store.data_dir) / segments[0].path), "-c", "1"],
        capture_output=True,
        text=True,
    )
    assert tshark.returncode == 0, tshark.stderr


def test_rotation_by_traffic_time(store):
    ring = RingWriter(store, ring_config(store, segment_seconds=10))
    ring.write_batch(frames(25, step=SEC), 1, True)  # 25 s of traffic
    ring.close()
    segments = rows(store)
    assert [r.packets for r in segments] == [10, 10, 5]
    assert all(r.last_ns - r.first_ns < 10 * SEC for r in segments)


def test_budget_deletes_oldest_segments_first(store):
    ring = RingWriter(store, ring_config(store, segment_bytes=MiB, max_bytes=3 * MiB))
    sent = frames(60_000, size=200)  # ~12.9 MiB through a 3 MiB ring
    for i in range(0, len(sent), 1000):
        ring.write_batch(sent[i : i + 1000], 1, True)
    ring.close()
    segments = rows(store)
    assert sum(r.bytes for r in segments) <= 3 * MiB
    assert ring.stats.evicted > 0
    kept = read_all(store)
    assert kept == sent[-len(kept) :]  # a contiguous tail: the oldest went first
    files = sorted(p.name for p in ring_directory(store.data_dir).iterdir())
    names = sorted(Path(r.path).name for r in segments)
    # each closed segment has its index beside it; an evicted one took its index along
    assert files == sorted([*names, *(f"{name}.idx" for name in names)])
    with store.session() as s:
        evicted = get_state(s, EVICTED_STATE)
    assert evicted["until_ns"] == sent[-len(kept) - 1][0]


def test_open_segment_is_indexed_at_each_tick_with_complete_records_only(store):
    ring = RingWriter(store, ring_config(store))
    ring.write_batch(frames(10), 1, True)
    ring.tick()
    [row] = rows(store)
    assert not row.closed and row.packets == 10 and row.owner_pid == os.getpid()
    path = Path(store.data_dir) / row.path
    ring.write_batch(frames(5, start=T0 + SEC), 1, True)  # buffered, not yet on disk
    assert len(list(iter_segment(path, row.bytes))) == 10
    ring.close()


def test_disk_full_evicts_oldest_and_keeps_capturing(store, monkeypatch):
    ring = RingWriter(store, ring_config(store, segment_bytes=MiB))
    ring.write_batch(frames(20_000, size=200), 1, True)  # a few closed segments
    ring.tick()
    before = rows(store)
    assert len(before) >= 3
    real_write = os.write
    failures = {"left": 2}

    def full_disk(fd, data):
        if failures["left"]:
            failures["left"] -= 1
            half = len(data) // 2
            if half:
                real_write(fd, bytes(data[:half]))  # a partial write first, as a real disk does
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    later = frames(2_000, size=200, start=T0 + 100 * SEC)
    ring.write_batch(later, 1, True)
    ring.close()
    assert ring.stats.disk_full == 2 and ring.stats.dropped == 0
    after = rows(store)
    assert before[0].path not in {r.path for r in after}  # the oldest went to make room
    kept = read_all(store)
    assert kept[-2000:] == later  # nothing of the new traffic lost, no torn record
    for row in after:
        scan = scan_segment(Path(store.data_dir) / row.path)
        assert scan is not None and scan.valid_end == scan.size == row.bytes


def test_disk_full_with_nothing_to_evict_drops_and_counts(store, monkeypatch):
    ring = RingWriter(store, ring_config(store))
    ring.write_batch(frames(10), 1, True)
    ring.tick()

    def always_full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", always_full)
    ring.write_batch(frames(10, start=T0 + SEC), 1, True)
    ring.tick()
    ring.write_batch(frames(10, start=T0 + 2 * SEC), 1, True)  # no crash: capture goes on
    monkeypatch.undo()
    ring.tick()
    ring.write_batch(frames(10, start=T0 + 3 * SEC), 1, True)
    ring.close()
    assert ring.stats.disk_full >= 1 and ring.stats.dropped >= 10
    assert read_all(store)[-10:] == frames(10, start=T0 + 3 * SEC)


def test_other_io_errors_are_a_clear_ring_error(store, monkeypatch):
    ring = RingWriter(store, ring_config(store))

    def broken(fd, data):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "write", broken)
    with pytest.raises(RingError, match="cannot write PCAP segment"):
        ring.write_batch(frames(1), 1, True)


def test_repair_cuts_a_partial_record_and_indexes_the_segment(store):
    ring = RingWriter(store, ring_config(store))
    sent = frames(50)
    ring.write_batch(sent, 1, True)
    ring.tick()
    [row] = rows(store)
    path = Path(store.data_dir) / row.path
    with open(path, "ab") as f:  # the crash hit in the middle of a record
        f.write(struct.pack("<IIII", 1, 2, 100, 100) + b"x" * 30)
    with store.session() as s:  # the writer is gone: pretend its pid died
        s.get(PcapSegment, row.id).owner_pid = 999_999_999
    os.close(ring._open[(1, True)].fd)
    report = repair_ring(store, ring_directory(store.data_dir))
    assert (report.repaired, report.truncated_bytes) == (1, 46)
    [fixed] = rows(store)
    assert fixed.closed and fixed.packets == 50 and fixed.bytes == path.stat().st_size
    assert read_all(store) == sent


def test_repair_indexes_stray_files_drops_missing_ones_and_spares_live_writers(store):
    directory = ring_directory(store.data_dir)
    live = RingWriter(store, ring_config(store), "w1")
    live.write_batch(frames(5), 1, True)
    live.tick()
    other = RingWriter(store, ring_config(store), "w2")
    other.write_batch(frames(7, start=T0 + SEC), 1, True)
    other.close()
    # a file the index never heard of (crash before the row was written) ...
    stray = directory / "w9-0000000000000000001-0001.pcap"
    shutil.copy(Path(store.data_dir) / rows(store)[1].path, stray)
    # ... and a row whose file is gone
    with store.session() as s:
        s.add(
            PcapSegment(
                path="pcap/ring/gone.pcap", writer="w3", owner_pid=0, linktype=1,
                nanosecond=True, first_ns=1, last_ns=2, packets=1, bytes=40, closed=True,
                created_ns=1,
            )
        )  # fmt: skip
    # w1's segment belongs to another running process (our own pid counts as a dead one:
    # after a restart the new agent may get the pid of the one that crashed)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with store.session() as s:
            row = s.scalars(select(PcapSegment).where(PcapSegment.writer == "w1")).one()
            row.owner_pid = sleeper.pid
        report = repair_ring(store, directory)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (report.indexed, report.removed, report.repaired) == (1, 1, 0)
    by_writer = {r.writer: r for r in rows(store)}
    assert by_writer["w9"].packets == 7 and by_writer["w9"].closed
    assert not by_writer["w1"].closed  # a live writer's open segment is left alone
    live.close()


def test_unwritable_ring_directory_is_a_clear_error(store, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RingError, match="cannot create PCAP ring directory"):
        RingWriter(store, RingConfig(directory=blocker / "ring", max_percent=None))
