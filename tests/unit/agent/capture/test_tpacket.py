"""TPACKET_V3 block parsing on a hand-built ring (no root needed), and statistics decoding."""

from __future__ import annotations

import mmap
import struct

import pytest

from otwatch.agent.capture import tpacket
from otwatch.agent.capture.config import CaptureConfig
from otwatch.agent.capture.opener import open_source
from otwatch.agent.capture.source import CaptureError, SourceStats

BLOCK = 4096


def build_block(frames, status=tpacket.TP_STATUS_USER) -> bytes:
    """A tpacket_block_desc + tpacket3_hdr records as the kernel lays them out."""
    first = 48
    body = b""
    for i, (sec, nsec, data, wire_len, vlan) in enumerate(frames):
        mac = 82
        size = (mac + len(data) + 7) & ~7
        next_offset = size if i < len(frames) - 1 else 0
        st = tpacket.TP_STATUS_USER
        tci = tpid = 0
        if vlan is not None:
            st |= tpacket.TP_STATUS_VLAN_VALID
            tci, tpid = vlan
            if tpid:
                st |= tpacket.TP_STATUS_VLAN_TPID_VALID
        hdr = struct.pack(
            "<IIIIIIHHIIHH", next_offset, sec, nsec, len(data), wire_len, st, mac, mac + 14,
            0, tci, tpid, 0,
        )  # fmt: skip
        record = hdr.ljust(mac, b"\0") + data
        body += record.ljust(size, b"\0")
    desc = struct.pack("<II", 1, 0) + struct.pack(
        "<IIIIQ", status, len(frames), first, first + len(body), 1
    )
    return (desc.ljust(first, b"\0") + body).ljust(BLOCK, b"\0")


def fake_source(blocks: list[bytes]) -> tpacket.TPacketSource:
    src = tpacket.TPacketSource.__new__(tpacket.TPacketSource)
    mm = mmap.mmap(-1, BLOCK * len(blocks))
    for i, block in enumerate(blocks):
        mm[i * BLOCK : (i + 1) * BLOCK] = block
    src._mm = mm
    src._block_size, src._blocks, src._next = BLOCK, len(blocks), 0
    src.linktype, src.name = 1, "fake0"
    src._stats = SourceStats("fake0")
    return src


def eth(payload: bytes = b"\x08\x00" + b"p" * 30) -> bytes:
    return bytes.fromhex("020000000002020000000001") + payload


def test_frames_come_out_in_order_with_nanosecond_times_and_blocks_are_released():
    blocks = [
        build_block([(10, 5, eth(), 60, None), (10, 6, eth(b"\x08\x06" + b"a" * 28), 42, None)]),
        build_block([(11, 999_999_999, eth(), 60, None)]),
        build_block([], status=tpacket.TP_STATUS_KERNEL),
    ]
    src = fake_source(blocks)
    frames = src.read_batch()
    assert [(f[0], f[1], f[2]) for f in frames] == [
        (10_000_000_005, 60, 1),
        (10_000_000_006, 42, 1),
        (11_999_999_999, 60, 1),
    ]
    assert frames[1][3] == eth(b"\x08\x06" + b"a" * 28)
    statuses = [struct.unpack_from("<I", src._mm, i * BLOCK + 8)[0] for i in range(3)]
    assert statuses == [tpacket.TP_STATUS_KERNEL] * 3  # handed back to the kernel
    assert src._next == 2 and src.read_batch() == [] and src._stats.received == 3


def test_reading_wraps_around_the_ring():
    src = fake_source([build_block([(1, 0, eth(), 60, None)]) for _ in range(2)])
    assert len(src.read_batch()) == 2 and src._next == 0
    src._mm[8:12] = struct.pack("<I", tpacket.TP_STATUS_USER)  # the kernel filled block 0 again
    assert len(src.read_batch()) == 1 and src._next == 1


def test_stripped_vlan_tags_are_put_back():
    data = eth()
    src = fake_source([build_block([(1, 0, data, 60, (0x2007, 0)), (1, 1, data, 60, (5, 0x88A8))])])
    plain, qinq = src.read_batch()
    assert plain[3] == data[:12] + bytes.fromhex("81002007") + data[12:] and plain[1] == 64
    assert qinq[3] == data[:12] + bytes.fromhex("88a80005") + data[12:]


def test_a_batch_stops_near_the_limit_at_a_block_boundary():
    src = fake_source([build_block([(1, i, eth(), 60, None) for i in range(3)]) for _ in range(4)])
    assert len(src.read_batch(limit=4)) == 6
    assert len(src.read_batch()) == 6


def test_bad_ring_geometry_and_missing_interfaces_are_clear_errors():
    with pytest.raises(CaptureError, match="power of two"):
        tpacket.TPacketSource("lo", CaptureConfig(("lo",), block_size=5000))
    with pytest.raises(CaptureError, match="no such network interface"):
        open_source("otwatch-nonexistent0", CaptureConfig(("otwatch-nonexistent0",)))
    with pytest.raises(CaptureError, match="unknown capture method"):
        open_source("lo", CaptureConfig(("lo",), method="carrier-pigeon"))
