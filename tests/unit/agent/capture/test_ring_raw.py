"""Raw record copying: a pcap file's own record bytes go to the ring unchanged."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.capture.pcapwrite import pcap_record, write_pcap_header
from otwatch.agent.capture.ring import RingWriter
from otwatch.agent.capture.ring_index import load_index
from tests.unit.agent.capture.test_ring import SEC, capinfos, frames, read_all, ring_config, rows


def write_file(path: Path, items, nanosecond: bool = True) -> None:
    with open(path, "wb") as f:
        write_pcap_header(f, 1, nanosecond=nanosecond)
        for ts, wire_len, _lt, data in items:
            f.write(pcap_record(ts, wire_len, data, nanosecond=nanosecond))


@pytest.mark.parametrize("nanosecond", [True, False])
def test_chunks_carry_the_files_own_record_bytes(tmp_path, nanosecond):
    path = tmp_path / "in.pcap"
    items = frames(10)
    write_file(path, items, nanosecond)
    body = path.read_bytes()[24:]
    with open_capture(path) as cap:
        chunks = list(cap.chunks(4))
    assert [len(chunk) for chunk, _ in chunks] == [4, 4, 2]
    assert b"".join(raw for _, raw in chunks) == body
    assert [f for chunk, _ in chunks for f in chunk] == list(open_capture(path))


def test_ring_copy_equals_frame_by_frame_writing(store, tmp_path):
    path = tmp_path / "in.pcap"
    items = frames(3000, step=1_000_000)
    write_file(path, items)
    ring = RingWriter(store, ring_config(store))
    with open_capture(path) as cap:
        for chunk, raw in cap.chunks(256):
            ring.write_raw(chunk, raw, 1, True)
    ring.close()
    [segment] = rows(store)
    assert segment.packets == 3000 and segment.first_ns == items[0][0]
    assert segment.last_ns == items[-1][0]
    assert read_all(store) == items
    assert capinfos(Path(store.data_dir) / segment.path) == (3000, sum(f[1] for f in items))


def test_a_chunk_crossing_the_rotation_time_goes_frame_by_frame(store, tmp_path):
    path = tmp_path / "in.pcap"
    items = frames(25, step=SEC)
    write_file(path, items)
    ring = RingWriter(store, ring_config(store, segment_seconds=10))
    with open_capture(path) as cap:
        for chunk, raw in cap.chunks(8):
            ring.write_raw(chunk, raw, 1, True)
    ring.close()
    assert [r.packets for r in rows(store)] == [10, 10, 5]


def test_a_timestamp_fraction_out_of_range_is_not_copied_raw(store, tmp_path):
    """A microsecond file whose record says 1,000,000 µs: its chunk comes without raw bytes,
    so the ring packs that record normalised (the next second) and its index need not know
    about fractions out of range."""
    path = tmp_path / "odd.pcap"
    items = frames(6, step=1_000)
    write_file(path, items, nanosecond=False)
    data = bytearray(path.read_bytes())
    rec = 24 + 2 * (16 + 100)  # the third record: 1,000,000 µs past its second
    data[rec : rec + 8] = struct.pack("<II", 7, 1_000_000)
    path.write_bytes(bytes(data))
    with open_capture(path) as cap:
        chunks = list(cap.chunks(3))
    assert [raw is None for _, raw in chunks] == [True, False]
    ring = RingWriter(store, ring_config(store))
    for chunk, raw in chunks:
        ring.write_raw(chunk, raw, 1, False)
    ring.close()
    [segment] = rows(store)
    body = (Path(store.data_dir) / segment.path).read_bytes()
    assert struct.unpack_from("<II", body, rec) == (8, 0)
    index = load_index(Path(store.data_dir) / segment.path, segment.bytes, 1)
    assert index is not None and not index.odd and index.records == 6
