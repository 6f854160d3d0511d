"""The one-pass evidence cut writes the same files as the frame-by-frame cut it replaced.

Each case builds one data directory (ring + alerts, real SQLite), copies it, cuts the
evidence with the old algorithm (``evidence_oracle.py``) in one copy and with today's code in
the other, and compares every file byte for byte and every evidence row. Small per-alert
budgets make files trim; a second round widens half the windows so files are extended
(and trimmed again) as a re-detected alert's are.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from otwatch.agent.capture.config import EvidenceConfig, RingConfig, evidence_directory
from otwatch.agent.capture.evidence import Evidence
from otwatch.agent.capture.evidence_cut import SegmentRef, merge_groups
from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.capture.ring import RingWriter
from otwatch.agent.capture.ring_index import load_index
from otwatch.agent.replay import replay
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models import Alert
from otwatch.agent.store.models_pcap import PcapEvidence, PcapSegment
from tests.unit.agent.capture.evidence_oracle import OldEvidence

REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO / "bench"))

from gen_capture import modbus_polling  # noqa: E402

from tests.factories import SEC  # noqa: E402

KiB = 1024


def _ring_config(data_dir: Path) -> RingConfig:
    return RingConfig(
        directory=data_dir / "pcap" / "ring",
        segment_bytes=96 * KiB,
        max_bytes=None,
        max_percent=None,
    )


def _corpus_files(pcaps: Path) -> list[Path]:
    """The corpus files the replay reads, oldest first packet first (a ring written in
    time order, as capture writes it)."""
    files = []
    for path in [*pcaps.glob("*.pcap*"), *pcaps.glob("more/*.pcap*")]:
        try:
            with open_capture(path) as cap:
                first = next(iter(cap), None)
        except Exception:  # files the replay refuses are not ring material
            continue
        if first is not None:
            files.append((first[0], path.name, path))
    return [path for *_, path in sorted(files)]


def _build(data_dir: Path, captures: list[Path], second_writer: Path | None = None) -> None:
    """Replay ``captures`` into a ring and alerts; ``second_writer`` also goes to the ring
    under another writer, shifted to overlap in time (as two capture workers do)."""
    store = open_store(data_dir)
    try:
        replay(captures, store, ring=_ring_config(data_dir))
        if second_writer is not None:
            ring = RingWriter(store, _ring_config(data_dir), "w2")
            with open_capture(second_writer) as cap:
                for ts, wlen, lt, data in cap:
                    ring.write(ts + 333_333, wlen, lt, data, True)
            ring.close()
    finally:
        store.close()


def _cut(data_dir: Path, cls: type[Evidence], budget: int, widen: bool, total: int) -> dict:
    store = open_store(data_dir, migrate_schema=False)
    try:
        config = EvidenceConfig(
            directory=evidence_directory(data_dir),
            before_s=3.0,
            after_s=2.0,
            alert_max_bytes=budget,
            max_bytes=total,
        )
        ev = cls(store, config, wall_ns=lambda: 1)
        with store.session() as s:
            ids = list(s.scalars(select(Alert.id).order_by(Alert.id)))
        ev.schedule(ids)
        ev.extract_many(ev.due(force=True))
        ev.enforce_budget()
        if widen:  # as if every other alert was detected again later
            with store.session() as s:
                s.execute(
                    update(PcapEvidence)
                    .where(PcapEvidence.alert_id.in_(ids[::2]))
                    .values(window_end_ns=PcapEvidence.window_end_ns + 40 * SEC, status="pending")
                )
            ev.extract_many(ev.due(force=True))
            ev.enforce_budget()
        with store.session() as s:
            rows = {
                r.alert_id: (r.status, r.path, r.packets, r.bytes, r.covered_until_ns)
                for r in s.scalars(select(PcapEvidence))
            }
        files = {p.name: p.read_bytes() for p in sorted(evidence_directory(data_dir).glob("*"))}
        return {"rows": rows, "files": files}
    finally:
        store.close()


def _compare(built: Path, tmp_path: Path, budget: int, widen: bool, total: int = 1 << 40) -> dict:
    old_dir, new_dir = tmp_path / f"old-{budget}", tmp_path / f"new-{budget}"
    shutil.copytree(built, old_dir)
    shutil.copytree(built, new_dir)
    old = _cut(old_dir, OldEvidence, budget, widen, total)
    new = _cut(new_dir, Evidence, budget, widen, total)
    assert new["rows"] == old["rows"]
    assert sorted(new["files"]) == sorted(old["files"])
    for name, data in old["files"].items():
        assert new["files"][name] == data, f"{name} differs"
    return new


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory, request) -> Path:
    from tests.conftest import PCAPS

    if not PCAPS.is_dir():
        pytest.skip(f"capture corpus not found at {PCAPS} (it ships beside the repo in shared/)")
    data_dir = tmp_path_factory.mktemp("corpus") / "data"
    _build(data_dir, _corpus_files(PCAPS), second_writer=PCAPS / "plant_mixed_ics.pcap")
    return data_dir


@pytest.fixture(scope="module")
def storm_dir(tmp_path_factory) -> Path:
    """An alert storm: 40 Modbus clients, no baseline (every client a new asset and a
    new function code), one writer."""
    tmp = tmp_path_factory.mktemp("storm")
    capture = tmp / "storm.pcap"
    modbus_polling(capture, 12_000, clients=40, seed=7)
    data_dir = tmp / "data"
    _build(data_dir, [capture])
    return data_dir


@pytest.mark.parametrize(
    ("budget", "widen"),
    [(48 * KiB, True), pytest.param(1 << 30, False, marks=pytest.mark.slow)],
)
def test_corpus_evidence_is_byte_identical(corpus_dir, tmp_path, budget, widen, monkeypatch):
    walks = _Walks(monkeypatch)
    new = _compare(corpus_dir, tmp_path, budget, widen)
    # segments alone in their time range are read through their index; the corpus files'
    # times overlap and some go back, so their group is walked
    assert walks.indexed > 0 and walks.groups > 0
    assert sum(1 for r in new["rows"].values() if r[0] == "ready") >= 20
    store = open_store(corpus_dir, migrate_schema=False)
    try:
        with store.session() as s:
            writers = set(s.scalars(select(PcapSegment.writer)))
    finally:
        store.close()
    assert writers == {"replay", "w2"}  # merged reading of two writers is exercised


@pytest.mark.parametrize(
    ("budget", "widen"),
    [(64 * KiB, True), pytest.param(1 << 30, True, marks=pytest.mark.slow)],
)
def test_alert_storm_evidence_is_byte_identical(storm_dir, tmp_path, budget, widen):
    new = _compare(storm_dir, tmp_path, budget, widen)
    assert len(new["files"]) >= 80
    if budget < 1 << 20:
        assert max(r[3] for r in new["rows"].values()) > budget - 200  # files were trimmed


def test_files_the_evidence_budget_takes_at_once_are_not_written(storm_dir, tmp_path):
    """Under a flood beyond the evidence budget the result is the same as writing every
    file and deleting the oldest: same files kept, same rows marked evicted."""
    new = _compare(storm_dir, tmp_path, 64 * KiB, True, total=1 << 20)
    evicted = [r for r in new["rows"].values() if r[0] == "evicted"]
    assert len(evicted) >= 20 and len(new["files"]) >= 10


def test_groups_are_segments_whose_times_overlap():
    def ref(first: int, last: int) -> SegmentRef:
        return SegmentRef(Path("x"), 0, 1, True, first, last)

    refs = [ref(0, 10), ref(5, 20), ref(21, 30), ref(30, 40), ref(41, 50)]
    assert merge_groups(refs) == [[0, 1], [2, 3], [4]]


class _Walks:
    """Counts the groups of segments the pass walks record by record, the groups it merges
    reading only the records its addresses need, and the segments it reads through their
    index alone (spies on the three)."""

    def __init__(self, monkeypatch) -> None:
        import otwatch.agent.capture.evidence_indexed as indexed

        self.groups = self.merged = self.indexed = 0
        walk, through_index = indexed.cut, indexed._cut_segment

        def counted(refs, jobs, interrupt=None, groups=None, records=None):
            count = len(merge_groups(refs) if groups is None else groups)
            if records is None:
                self.groups += count
            else:
                self.merged += count
            return walk(refs, jobs, interrupt, groups, records)

        def counted_index(*args):
            self.indexed += 1
            return through_index(*args)

        monkeypatch.setattr(indexed, "cut", counted)
        monkeypatch.setattr(indexed, "_cut_segment", counted_index)


def test_the_storm_is_cut_through_the_indexes_alone(storm_dir, tmp_path, monkeypatch):
    """One writer: every segment is alone in its time range and has its index, so no record
    header is walked, and the files are still the old cut's."""
    indexes = list((storm_dir / "pcap" / "ring").glob("*.pcap.idx"))
    assert len(indexes) == len(list((storm_dir / "pcap" / "ring").glob("*.pcap"))) >= 2
    walks = _Walks(monkeypatch)
    new = _compare(storm_dir, tmp_path, 64 * KiB, True)
    assert walks.groups == 0 and walks.indexed > 0
    assert len(new["files"]) >= 80


@pytest.fixture(scope="module")
def two_writers_dir(tmp_path_factory) -> Path:
    """Two capture workers' segments overlapping in time, times in order in each."""
    tmp = tmp_path_factory.mktemp("two")
    first, second = tmp / "first.pcap", tmp / "second.pcap"
    modbus_polling(first, 6_000, clients=20, seed=3)
    modbus_polling(second, 6_000, clients=20, seed=4)
    data_dir = tmp / "data"
    _build(data_dir, [first], second_writer=second)
    return data_dir


def test_overlapping_writers_merge_only_the_records_of_the_pass(
    two_writers_dir, tmp_path, monkeypatch
):
    walks = _Walks(monkeypatch)
    new = _compare(two_writers_dir, tmp_path, 64 * KiB, True)
    assert walks.merged > 0 and walks.groups == 0
    assert len(new["files"]) >= 40


def _damage(ring: Path, how: str) -> int:
    """Spoil every other segment's index; returns how many."""
    spoiled = 0
    for i, idx in enumerate(sorted(ring.glob("*.pcap.idx"))):
        if i % 2:
            continue
        spoiled += 1
        if how == "missing":
            idx.unlink()
        elif how == "truncated":
            os.truncate(idx, idx.stat().st_size // 2)
        elif how == "corrupt":
            data = bytearray(idx.read_bytes())
            data[len(data) // 2] ^= 0x55
            idx.write_bytes(bytes(data))
        else:  # stale: the segment changed after its index was written
            segment = idx.with_suffix("")
            st = segment.stat()
            os.utime(segment, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    return spoiled


@pytest.mark.parametrize("how", ["missing", "truncated", "corrupt", "stale"])
def test_a_bad_index_is_made_again_and_the_files_are_the_same(
    storm_dir, tmp_path, monkeypatch, how
):
    damaged = tmp_path / "damaged"
    shutil.copytree(storm_dir, damaged)
    ring = damaged / "pcap" / "ring"
    spoiled = _damage(ring, how)
    walks = _Walks(monkeypatch)
    new = _compare(damaged, tmp_path, 64 * KiB, True)
    # the pass indexed the closed segments again (one walk each) instead of walking them
    assert spoiled > 0 and walks.groups == 0
    assert len(new["files"]) >= 80
    store = open_store(tmp_path / "new-65536", migrate_schema=False)
    try:
        with store.session() as s:
            segments = list(s.scalars(select(PcapSegment)))
        for row in segments:
            path = tmp_path / "new-65536" / row.path
            assert load_index(path, row.bytes, row.linktype) is not None, path.name
    finally:
        store.close()


@pytest.mark.parametrize("how", ["missing", "corrupt"])
def test_a_segment_that_cannot_be_indexed_is_walked_with_the_same_files(
    storm_dir, tmp_path, monkeypatch, how
):
    import otwatch.agent.capture.evidence_indexed as indexed

    damaged = tmp_path / "damaged"
    shutil.copytree(storm_dir, damaged)
    spoiled = _damage(damaged / "pcap" / "ring", how)
    monkeypatch.setattr(indexed, "index_segment", lambda *args: False)  # e.g. a read-only ring
    walks = _Walks(monkeypatch)
    new = _compare(damaged, tmp_path, 64 * KiB, True)
    # both rounds (the second extends half the files) walk the spoiled segments they need
    assert spoiled <= walks.groups <= 2 * spoiled
    assert len(new["files"]) >= 80


def test_alerts_of_one_busy_host_share_one_file(storm_dir, tmp_path):
    """Every client's alert with the server keeps the same newest 64 KiB of the server's
    traffic: written once, linked; extending half of them later gives each its own file,
    as the old cut wrote them (compared byte for byte in both rounds)."""
    _compare(storm_dir, tmp_path, 64 * KiB, False)
    files = list((tmp_path / f"new-{64 * KiB}" / "pcap" / "evidence").glob("*.pcap"))
    shared = [p for p in files if p.stat().st_nlink > 1]
    assert len(shared) >= 10
    assert len({p.stat().st_ino for p in shared}) < len(shared)
    _compare(storm_dir, tmp_path / "widened", 64 * KiB, True)


_V6 = [f"2001:db8::{i}" for i in range(1, 7)]
_V4 = [f"192.0.2.{i}" for i in range(11, 15)]


@pytest.fixture(scope="module")
def ipv6_dir(tmp_path_factory) -> Path:
    """IPv6 and IPv4 traffic (some of it VLAN-tagged), one writer, and alerts named by
    IPv6 addresses, by IPv4 ones and by both."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Dot1Q, Ether

    from otwatch.agent.alerts.manager import AlertManager
    from otwatch.agent.engines.detection import DetectionFactory
    from otwatch.alerts.catalog import load_catalog

    data_dir = tmp_path_factory.mktemp("ipv6") / "data"
    store = open_store(data_dir)
    try:
        ring = RingWriter(store, _ring_config(data_dir), "w1")
        frames = []
        for i in range(6_000):
            eth = Ether(src=f"02:00:00:00:01:{i % 6:02x}", dst=f"02:00:00:00:02:{i % 5:02x}")
            if i % 3:
                layer = IPv6(src=_V6[i % 6], dst=_V6[(i * 7 + 1) % 6])
            else:
                layer = IP(src=_V4[i % 4], dst=_V4[(i // 4) % 4])
            frame = (
                eth
                / (Dot1Q(vlan=5) / layer if i % 17 == 0 else layer)
                / UDP(sport=1000 + i % 50, dport=502)
            )
            data = bytes(frame / bytes(i % 40))
            frames.append((SEC + i * 5_000_000, len(data), 1, data))
        for start in range(0, len(frames), 500):
            ring.write_batch(frames[start : start + 500], 1, True)
        ring.close()
        catalog = load_catalog()
        factory, manager = DetectionFactory(catalog), AlertManager(store, catalog, sensor_id="t")
        hosts = [
            *((_V6[i], _V6[(i + 1) % 6]) for i in range(6)),
            *((_V6[i], None) for i in range(6)),
            *((_V4[i], _V6[i]) for i in range(4)),
            *((_V4[i], _V4[(i + 1) % 4]) for i in range(4)),
        ]
        for n, (src, dst) in enumerate(hosts):
            det = factory.make(
                "modbus_address_range_violation" if dst else "firmware_version_changed",
                SEC + (n + 1) * 1_200_000_000, f"{src} {dst}",
                source_address=src, destination_address=dst, protocol="modbus",
            )  # fmt: skip
            manager.observe(det)
        manager.flush()
    finally:
        store.close()
    return data_dir


def test_alerts_named_by_ipv6_addresses_are_cut_through_the_index(ipv6_dir, tmp_path, monkeypatch):
    walks = _Walks(monkeypatch)
    new = _compare(ipv6_dir, tmp_path, 16 * KiB, True)
    assert walks.groups == 0 and walks.indexed > 0
    assert sum(1 for r in new["rows"].values() if r[0] == "ready") >= 18
