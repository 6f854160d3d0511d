"""The index the ring writes beside each segment: what it says, and that it is refused whenever it
may not describe the segment (the evidence cut then walks the segment; the files it writes
either way are compared in ``test_evidence_cut.py``)."""

from __future__ import annotations

import ipaddress
import os
import stat
import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from otwatch.agent.capture.pcapwrite import file_header
from otwatch.agent.capture.ring import RingWriter
from otwatch.agent.capture.ring_index import (
    IndexBuilder,
    index_path,
    index_segment,
    load_index,
)
from otwatch.agent.capture.ring_repair import repair_ring
from otwatch.agent.capture.ring_segments import iter_segment
from otwatch.agent.store.models_pcap import PcapSegment
from tests.factories import T0, ether_frames, udp
from tests.unit.agent.capture.test_ring import ring_config, rows

A, B, C = "192.0.2.1", "192.0.2.2", "198.51.100.3"
V6A, V6B = "2001:db8::1", "2001:db8::2"
ETH = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


def _packets() -> list:
    """Untagged IPv4 between three hosts, two IPv6 frames, and frames the index leaves to
    the cut (ARP, VLAN-tagged IPv4, a frame too short for an IPv4 header)."""
    out = []
    for i in range(120):
        src, dst = [(A, B), (B, A), (A, C), (C, C)][i % 4] if i % 10 else (B, C)
        out.append(udp(src, dst, 1000 + i, 502, b"x" * (i % 7)))
    out[5] = Ether(**ETH, type=0x0806) / ARP(psrc=A, pdst=B)
    out[6] = Ether(**ETH) / Dot1Q(vlan=7) / IP(src=A, dst=B) / UDP()
    out[7] = Ether(**ETH) / IPv6(src=V6A, dst=V6B) / UDP()
    out[9] = Ether(**ETH) / IPv6(src=V6B, dst=V6B) / UDP()
    out[8] = Ether(**ETH, type=0x0800) / b"\x45\x00"
    return out


def _write(store, frames, **config) -> Path:
    ring = RingWriter(store, ring_config(store, **config))
    for i in range(0, len(frames), 25):  # several chunks, several flushes
        ring.write_batch(frames[i : i + 25], 1, True)
        ring.tick()
    ring.close()
    [row] = rows(store)
    return Path(store.data_dir) / row.path


def _expected_runs(frames, address: str) -> list[tuple[int, int]]:
    packed = ipaddress.ip_address(address).packed
    runs: list[tuple[int, int]] = []
    for k, (_ts, _wlen, _lt, data) in enumerate(frames):
        if data[12:14] == b"\x08\x00" and len(data) >= 34:
            carries = packed in (data[26:30], data[30:34])
        else:
            carries = data[12:14] == b"\x86\xdd" and packed in (data[22:38], data[38:54])
        if carries:
            if runs and runs[-1][1] == k:
                runs[-1] = (runs[-1][0], k + 1)
            else:
                runs.append((k, k + 1))
    return runs


def test_the_index_gives_every_record_and_each_address_runs(store):
    frames = ether_frames(_packets(), step_ns=1_000)
    path = _write(store, frames)
    index = load_index(path, path.stat().st_size, 1)
    assert index is not None and index.mono and not index.odd
    assert index.records == len(frames)
    # offsets and times are those of the records in the file
    walked, pos = [], 24
    for ts, _wlen, _lt, data in iter_segment(path):
        walked.append((pos, ts))
        pos += 16 + len(data)
    assert list(zip(index.offs[:-1], index.ts, strict=True)) == walked
    assert index.offs[-1] == path.stat().st_size
    assert stat.S_IMODE(index_path(path).stat().st_mode) == 0o640  # as private as the segment
    for address in (A, B, C, V6A, V6B):
        got = list(zip(*index.runs(ipaddress.ip_address(address).packed, 0, len(frames)),
                       strict=True))  # fmt: skip
        assert got == _expected_runs(frames, address), address
    assert len(index.addresses) == 5
    assert list(index.other) == [5, 6, 8]  # ARP, VLAN, short: tested frame by frame


def test_times_that_go_back_and_odd_fractions_are_noted():
    builder = IndexBuilder(1, True)
    frame = bytes(udp(A, B, 1, 2))
    rec = struct.pack("<IIII", 10, 5, len(frame), len(frame)) + frame
    back = struct.pack("<IIII", 9, 5, len(frame), len(frame)) + frame
    data = file_header(1, True) + rec + back  # as a segment file holds them
    builder.scan(data, 24, len(data))
    assert builder.last == -2 and not builder.broken  # not monotonic
    odd = IndexBuilder(1, False)  # microseconds: a fraction of a million or more is odd
    data = file_header(1, False) + struct.pack("<IIII", 10, 10**6, len(frame), len(frame)) + frame
    odd.scan(data, 24, len(data))
    assert odd.odd and not builder.odd
    cut_short = IndexBuilder(1, True)
    cut_short.scan(file_header(1, True) + rec[:-1], 24, 24 + len(rec) - 1)
    assert cut_short.broken


@pytest.mark.parametrize("damage", ["missing", "truncated", "corrupt", "stale", "grown"])
def test_an_index_that_may_not_describe_its_segment_is_refused(store, damage):
    path = _write(store, ether_frames(_packets(), step_ns=1_000))
    size = path.stat().st_size
    idx = index_path(path)
    assert load_index(path, size, 1) is not None
    if damage == "missing":
        idx.unlink()
    elif damage == "truncated":
        os.truncate(idx, idx.stat().st_size - 4)
    elif damage == "corrupt":  # one byte of the body changed: the CRC says so
        data = bytearray(idx.read_bytes())
        data[-5] ^= 0xFF
        idx.write_bytes(bytes(data))
    elif damage == "stale":  # the segment was rewritten (same size) after its index
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    elif damage == "grown":
        with open(path, "ab") as f:
            f.write(struct.pack("<IIII", 1, 0, 0, 0))
        size = path.stat().st_size
    assert load_index(path, size, 1) is None


def test_the_reader_s_limit_and_link_type_must_match(store):
    path = _write(store, ether_frames(_packets(), step_ns=1_000))
    size = path.stat().st_size
    assert load_index(path, size - 1, 1) is None  # a reader that stops short of the end
    assert load_index(path, size, 113) is None


def test_no_index_when_switched_off_and_none_for_an_empty_segment(store):
    path = _write(store, ether_frames(_packets()), index=False)
    assert path.exists() and not index_path(path).exists()
    assert not index_segment(path.with_name("none.pcap"), 1, True)


def test_a_segment_written_without_an_index_can_be_indexed_later(store):
    frames = ether_frames(_packets(), step_ns=1_000)
    path = _write(store, frames, index=False)
    assert index_segment(path, 1, True)
    index = load_index(path, path.stat().st_size, 1)
    assert index is not None and index.records == len(frames)


def test_repair_indexes_the_segments_it_closes_and_drops_orphan_indexes(store):
    ring = RingWriter(store, ring_config(store))
    frames = ether_frames([udp(A, B, 1, 2)] * 30, start_ns=T0, step_ns=1_000)
    ring.write_batch(frames, 1, True)
    ring.tick()
    [row] = rows(store)
    path = Path(store.data_dir) / row.path
    assert not index_path(path).exists()  # an open segment has no index yet
    with store.session() as s:  # the writer is gone
        s.get(PcapSegment, row.id).owner_pid = 999_999_999
    os.close(ring._open[(1, True)].fd)
    orphan = path.with_name("w9-0-0001.pcap.idx")
    orphan.write_bytes(b"left behind")
    leftover = path.with_name("w9-0-0002.pcap.idx.tmp")
    leftover.write_bytes(b"half written")
    repair_ring(store, path.parent)
    index = load_index(path, path.stat().st_size, 1)
    assert index is not None and index.records == 30
    assert not orphan.exists() and not leftover.exists()


def test_the_first_reader_puts_the_index_as_read_in_place(store):
    frames = ether_frames(_packets(), step_ns=1_000)
    path = _write(store, frames)
    idx = index_path(path)
    assert idx.read_bytes()[:8] == b"OTWRIDXP"  # as the writer leaves it: a pair per record
    first = load_index(path, path.stat().st_size, 1)
    assert idx.read_bytes()[:8] == b"OTWRIDX2"  # the pairs' records, for the next reader
    again = load_index(path, path.stat().st_size, 1)
    assert first is not None and again is not None
    for address in (A, B, C, V6A, V6B):
        packed = ipaddress.ip_address(address).packed
        assert again.runs(packed, 0, len(frames)) == first.runs(packed, 0, len(frames))
        assert list(again.numbers(packed)) == list(first.numbers(packed))
    assert list(again.offs) == list(first.offs) and list(again.other) == [5, 6, 8]


def test_an_index_that_cannot_be_put_in_place_is_still_read(store, monkeypatch):
    from otwatch.agent.capture import ring_index

    frames = ether_frames(_packets(), step_ns=1_000)
    path = _write(store, frames)
    monkeypatch.setattr(ring_index, "_put", lambda *args: False)  # e.g. a read-only ring
    index = load_index(path, path.stat().st_size, 1)
    assert index is not None and index.records == len(frames)
    assert index_path(path).read_bytes()[:8] == b"OTWRIDXP"  # derived again next time
    got = list(zip(*index.runs(ipaddress.ip_address(A).packed, 0, len(frames)), strict=True))
    assert got == _expected_runs(frames, A)


def test_windows_and_whole_windows(store):
    frames = ether_frames(_packets(), step_ns=1_000)
    path = _write(store, frames)
    index = load_index(path, path.stat().st_size, 1)
    assert index is not None
    a = ipaddress.ip_address(A).packed
    for ka, kb in [(0, 10), (3, 4), (11, 40), (37, 120), (119, 120)]:
        expected = [
            (max(s, ka), min(e, kb)) for s, e in _expected_runs(frames, A) if s < kb and e > ka
        ]
        assert list(zip(*index.runs(a, ka, kb), strict=True)) == expected, (ka, kb)
        assert index.covers(a, ka, kb) == (expected == [(ka, kb)]), (ka, kb)
    assert index.runs(b"\x00" * 4, 0, 120) == ([], []) and not index.covers(b"\x00" * 4, 0, 1)


def test_frames_of_another_link_type_are_all_other(store):
    raw_ip = [bytes(IP(src=A, dst=B) / UDP()) for _ in range(5)]
    ring = RingWriter(store, ring_config(store))
    ring.write_batch([(T0 + i, len(d), 101, d) for i, d in enumerate(raw_ip)], 101, True)
    ring.close()
    [row] = rows(store)
    path = Path(store.data_dir) / row.path
    index = load_index(path, path.stat().st_size, 101)
    assert index is not None and index.addresses == {} and list(index.other) == [0, 1, 2, 3, 4]


def test_a_segment_evicted_while_its_index_is_read_leaves_no_index_behind(store, monkeypatch):
    from otwatch.agent.capture import ring_index

    path = _write(store, ether_frames(_packets(), step_ns=1_000))
    real_put = ring_index._put

    def evicted_meanwhile(target, head, parts):
        path.unlink()  # the writer evicts: the segment goes, then its index
        index_path(path).unlink()
        return real_put(target, head, parts)  # the reader's index lands after that

    monkeypatch.setattr(ring_index, "_put", evicted_meanwhile)
    assert load_index(path, 1 << 30, 1) is None
    assert not index_path(path).exists()


def _random_frames(rng, count: int) -> list:
    """Frames of every shape the builder tells apart: untagged IPv4 (a few hosts, so pairs
    repeat, some to themselves), IPv6, VLAN-tagged, ARP, frames too short for their header."""
    v4 = [bytes([192, 0, 2, i]) for i in range(1, 6)]
    v6 = [ipaddress.ip_address(f"2001:db8::{i}").packed for i in range(1, 4)]
    macs = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    frames = []
    for k in range(count):
        shape = rng.random()
        if shape < 0.6:
            body = (
                b"\x08\x00"
                + bytes(12)
                + rng.choice(v4)
                + rng.choice(v4)
                + bytes(rng.randrange(0, 30))
            )
        elif shape < 0.7:
            body = (
                b"\x86\xdd"
                + bytes(8)
                + rng.choice(v6)
                + rng.choice(v6)
                + bytes(rng.randrange(0, 9))
            )
        elif shape < 0.8:
            body = b"\x81\x00\x00\x07\x08\x00" + bytes(12) + rng.choice(v4) + rng.choice(v4)
        elif shape < 0.9:
            body = b"\x08\x06" + bytes(28)
        else:
            body = rng.choice((b"\x08\x00", b"\x86\xdd")) + bytes(rng.randrange(0, 25))
        data = macs + body
        frames.append((T0 + k * 1_000, len(data), 1, data))
    return frames


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_frames_in_random_chunks_index_as_the_frames_say(store, seed):
    import random

    rng = random.Random(seed)
    frames = _random_frames(rng, 700)
    ring = RingWriter(store, ring_config(store))
    pos = 0
    while pos < len(frames):  # chunks of every size, all-IPv4 ones among them
        step = rng.choice((1, 2, 7, 50, 130))
        ring.write_batch(frames[pos : pos + step], 1, True)
        ring.tick()
        pos += step
    ring.close()
    [row] = rows(store)
    path = Path(store.data_dir) / row.path
    index = load_index(path, path.stat().st_size, 1)
    assert index is not None and index.records == len(frames) and index.mono
    carriers: dict[bytes, list[int]] = {}
    other = []
    for k, (_ts, _wlen, _lt, data) in enumerate(frames):
        if data[12:14] == b"\x08\x00" and len(data) >= 34:
            hosts = {data[26:30], data[30:34]}
        elif data[12:14] == b"\x86\xdd" and len(data) >= 54:
            hosts = {data[22:38], data[38:54]}
        else:
            other.append(k)
            continue
        for host in hosts:
            carriers.setdefault(host, []).append(k)
    assert list(index.other) == other
    assert set(index.addresses) == set(carriers)
    for host, numbers in carriers.items():
        assert list(index.numbers(host)) == numbers
        for _ in range(5):
            ka = rng.randrange(0, len(frames))
            kb = rng.randrange(ka + 1, len(frames) + 1)
            expected = [k for k in numbers if ka <= k < kb]
            starts, ends = index.runs(host, ka, kb)
            assert [k for a, b in zip(starts, ends, strict=True) for k in range(a, b)] == expected
            assert all(a2 > b1 for b1, a2 in zip(ends, starts[1:], strict=False))  # apart
            assert index.covers(host, ka, kb) == (len(expected) == kb - ka)
    # the same index again from the file alone (as the crash repair and the pass make it)
    assert index_segment(path, 1, True)
    walked = load_index(path, path.stat().st_size, 1)
    assert walked is not None and list(walked.other) == other
    assert {host: list(walked.numbers(host)) for host in walked.addresses} == carriers


def test_a_segment_past_4_gib_gets_no_index_and_the_writer_goes_on():
    builder = IndexBuilder(1, True)
    frame = bytes(udp(A, B, 1, 2))
    builder.end = 0xFFFF_FF00  # as if 4 GiB had been written already
    builder.add([(T0, len(frame), 1, frame)] * 20)  # crosses the 32-bit offsets
    assert builder.broken
    builder.add([(T0, len(frame), 1, frame)])  # later chunks: nothing more to note
    assert len(builder.offs) == 0
