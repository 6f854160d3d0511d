"""Tests for the pcap/pcapng reader against the shared capture corpus and hand-built files."""

from __future__ import annotations

import csv
import io
import os
import random
import shutil
import struct
import subprocess
import threading
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otwatch.agent.capture.pcapfile import MAX_CAPLEN, CaptureFile, CaptureFileError, open_capture
from otwatch.agent.capture.pcapwrite import pcap_record, write_pcap_header
from otwatch.errors import OtwatchError

PCAPS = Path(__file__).resolve().parents[4].parent / "shared" / "pcaps"
LINKTYPES = {"ether": 1, "linux-sll": 113}


def _need_corpus() -> None:
    if not PCAPS.is_dir():
        pytest.skip(f"capture corpus not found at {PCAPS}")


def _manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _corpus_rows() -> list[dict[str, str]]:
    # Without the corpus, one placeholder row makes the test skip with a clear reason.
    return _manifest(PCAPS) if PCAPS.is_dir() else [{"file": "corpus-missing"}]


def _iso_ns(text: str) -> int:
    """``2004-08-26T12:01:18.945447Z`` -> ns since the epoch (exact, no float)."""
    whole, frac = text.rstrip("Z").split(".")
    sec = int(datetime.fromisoformat(whole + "+00:00").timestamp())
    return sec * 1_000_000_000 + int(frac.ljust(9, "0"))


def _read(path: Path | str) -> tuple[list[tuple[int, int, int, bytes]], CaptureFile]:
    with open_capture(path) as cap:
        frames = list(cap)
    return frames, cap


# -- corpus ----------------------------------------------------------------------------------


@pytest.mark.parametrize("row", _corpus_rows(), ids=lambda r: r["file"])
def test_corpus_file_matches_manifest(row: dict[str, str]) -> None:
    _need_corpus()
    path = PCAPS / row["file"]
    frames, cap = _read(path)
    size = path.stat().st_size
    assert cap.problem is None
    assert cap.packets == len(frames) == int(row["packets"])
    # The MANIFEST's "bytes" column is the file size, not the captured bytes.
    assert int(row["bytes"]) == size
    assert cap.bytes == sum(len(f[3]) for f in frames)
    if cap.format == "pcap":
        assert cap.bytes == size - 24 - 16 * cap.packets
    assert cap.linktype == LINKTYPES[row["link_type"]]
    assert {f[2] for f in frames} == {cap.linktype}
    assert frames[0][0] == _iso_ns(row["first_ts"])
    assert frames[-1][0] == _iso_ns(row["last_ts"])
    assert all(len(data) <= wire for _, wire, _, data in frames)


def test_corpus_agrees_with_capinfos() -> None:
    _need_corpus()
    capinfos = shutil.which("capinfos")
    if capinfos is None:
        pytest.skip("capinfos (wireshark-common) is not installed")
    files = sorted(p for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))
    out = subprocess.run(
        [capinfos, "-T", "-r", "-M", "-c", "-d", *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    seen = 0
    for line in out.splitlines():
        name, count, data_size = line.split("\t")
        frames, cap = _read(name)
        # capinfos' "data size" is the sum of the original (wire) lengths.
        assert (cap.packets, sum(f[1] for f in frames)) == (int(count), int(data_size)), name
        seen += 1
    assert seen == len(files)


def test_pcapng_file() -> None:
    _need_corpus()
    _, cap = _read(PCAPS / "hart_ip.pcapng")
    assert (cap.format, cap.linktype, cap.nanosecond, cap.snaplen) == ("pcapng", 1, False, 65535)
    assert cap.packets == 116 and cap.bytes == 7718


def test_linux_sll_file() -> None:
    _need_corpus()
    frames, cap = _read(PCAPS / "arp_linux_sll.pcap")
    assert cap.linktype == 113
    assert all(f[2] == 113 for f in frames)


def test_truncated_file_yields_partial_last_record() -> None:
    _need_corpus()
    path = PCAPS / "malformed" / "melsec_tcp_cut_short.pcap"
    frames, cap = _read(path)
    assert len(frames) == cap.packets == 2042
    assert cap.problem == (
        "truncated inside record 2042 at byte 331665 (header says 157 bytes, 95 present)"
    )
    _, wire, _, data = frames[-1]
    assert (wire, len(data)) == (157, 95)
    assert cap.bytes == path.stat().st_size - 24 - 16 * 2042


def test_caplen8_frame() -> None:
    _need_corpus()
    frames, cap = _read(PCAPS / "malformed" / "eth_caplen8.pcap")
    assert cap.problem is None
    assert [(len(f[3]), f[1]) for f in frames] == [(8, 78)]


# -- open errors -----------------------------------------------------------------------------


def test_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a capture\n")
    with pytest.raises(CaptureFileError) as err:
        open_capture(path)
    assert str(err.value) == f"{path}: not a pcap or pcapng file (starts with 0x68656c6c)"
    assert isinstance(err.value, OtwatchError)


def test_random_bytes_are_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "random.bin"
    path.write_bytes(b"\x12\x34\xab\xcd" + random.Random(3).randbytes(1000))
    with pytest.raises(CaptureFileError, match=r"random\.bin: not a pcap .*0x1234abcd"):
        open_capture(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(CaptureFileError, match=r"empty\.pcap: empty file$"):
        open_capture(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureFileError, match=r"nope\.pcap: cannot read: No such file"):
        open_capture(tmp_path / "nope.pcap")
    with pytest.raises(CaptureFileError, match="cannot read"):
        open_capture(tmp_path)


def test_short_pcap_header(tmp_path: Path) -> None:
    path = tmp_path / "short.pcap"
    path.write_bytes(struct.pack("<IHH", 0xA1B2C3D4, 2, 4))
    with pytest.raises(CaptureFileError, match=r"truncated pcap header \(8 of 24 bytes\)"):
        open_capture(path)


# -- classic pcap ----------------------------------------------------------------------------


def _write_pcap(path: Path, frames: list[tuple[int, int, bytes]], nanosecond: bool = True) -> None:
    with open(path, "wb") as f:
        write_pcap_header(f, 1, nanosecond=nanosecond)
        for ts, wire, data in frames:
            f.write(pcap_record(ts, wire, data, nanosecond=nanosecond))


def test_ns_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ns.pcap"
    stamps = [1_767_225_600_000_000_001, 1_767_225_600_123_456_789, 1_767_225_601_999_999_999]
    _write_pcap(path, [(ts, 60 + i, bytes([i]) * 60) for i, ts in enumerate(stamps)])
    frames, cap = _read(path)
    assert cap.nanosecond and cap.snaplen == MAX_CAPLEN and cap.linktype == 1
    assert [f[0] for f in frames] == stamps
    assert [f[1] for f in frames] == [60, 61, 62]
    assert frames[2][3] == b"\x02" * 60


def test_us_writer_truncates_to_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "us.pcap"
    _write_pcap(path, [(1_000_000_123_456_789, 1, b"x")], nanosecond=False)
    frames, cap = _read(path)
    assert not cap.nanosecond
    assert frames[0][0] == 1_000_000_123_456_000


def test_big_endian_pcap(tmp_path: Path) -> None:
    path = tmp_path / "be.pcap"
    body = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 113)
    body += struct.pack(">IIII", 1_600_000_000, 250_000, 3, 70) + b"abc"
    path.write_bytes(body)
    frames, cap = _read(path)
    assert cap.linktype == 113
    assert frames == [(1_600_000_000_250_000_000, 70, 113, b"abc")]


def test_many_chunks_round_trip(tmp_path: Path) -> None:
    """Records of random sizes across several 1 MiB read chunks come back byte-exact."""
    rng = random.Random(7)
    frames = [(i * 1000, 0, rng.randbytes(rng.randint(0, 3000))) for i in range(3000)]
    frames = [(ts, len(d) + 4, d) for ts, _, d in frames]
    path = tmp_path / "big.pcap"
    _write_pcap(path, frames)
    assert path.stat().st_size > 3 << 20
    got, cap = _read(path)
    assert cap.problem is None
    assert got == [(ts, wire, 1, d) for ts, wire, d in frames]
    assert cap.bytes == sum(len(d) for _, _, d in frames)


def test_absurd_caplen_stops_with_problem(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pcap"
    _write_pcap(path, [(1, 60, b"a" * 60), (2, 60, b"b" * 60)])
    with open(path, "ab") as f:
        f.write(struct.pack("<IIII", 3, 0, 1 << 30, 60) + b"c" * 100)
        f.write(pcap_record(4, 60, b"d" * 60))
    frames, cap = _read(path)
    assert len(frames) == cap.packets == 2
    assert cap.problem == (
        "corrupt record 3 at byte 176 (captured length 1073741824 exceeds 262144)"
    )


def test_caplen_limit_follows_snaplen(tmp_path: Path) -> None:
    """More than 10x the snaplen is corrupt, but the limit never drops below 64 KiB."""
    path = tmp_path / "snap.pcap"
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 10_000, 1)
    path.write_bytes(header + struct.pack("<IIII", 1, 0, 150_000, 150_000) + bytes(150_000))
    frames, cap = _read(path)
    assert frames == [] and cap.problem is not None
    assert cap.problem.endswith("(captured length 150000 exceeds 100000)")
    tiny = tmp_path / "tiny.pcap"
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 1, 1)
    tiny.write_bytes(header + struct.pack("<IIII", 1, 0, 9000, 9000) + bytes(9000))
    frames, cap = _read(tiny)
    assert cap.problem is None and len(frames[0][3]) == 9000


def test_truncated_inside_record_header(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    _write_pcap(path, [(1, 60, b"a" * 60)])
    with open(path, "ab") as f:
        f.write(b"\x01\x02\x03\x04\x05")
    frames, cap = _read(path)
    assert len(frames) == 1
    assert cap.problem == "truncated inside record 2 header at byte 100 (5 of 16 bytes present)"


def test_reiteration_and_early_stop(tmp_path: Path) -> None:
    path = tmp_path / "again.pcap"
    _write_pcap(path, [(i, 1, bytes([i])) for i in range(10)])
    with open_capture(path) as cap:
        for i, _ in enumerate(cap):
            if i == 3:
                break
        assert cap.packets == 4
        assert len(list(cap)) == 10
        assert cap.packets == 10 and cap.bytes == 10


# -- pcapng ----------------------------------------------------------------------------------


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def _option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _shb(order: str) -> bytes:
    opts = _option(order, 4, b"otwatch test") + _option(order, 0, b"")
    return _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)


def _idb(order: str, linktype: int, snaplen: int = 0, tsresol: int | None = None) -> bytes:
    opts = _option(order, 2, b"eth0")
    if tsresol is not None:
        opts += _option(order, 9, bytes([tsresol]))
    return _block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts)


def _epb(order: str, iface: int, ticks: int, data: bytes, wire: int | None = None) -> bytes:
    wire = len(data) if wire is None else wire
    head = struct.pack(order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire)
    return _block(order, 6, head + data + b"\0" * (-len(data) % 4) + _option(order, 1, b"c"))


def test_pcapng_ns_resolution_and_other_blocks(tmp_path: Path) -> None:
    o = "<"
    ts = 1_767_225_600_123_456_789
    blob = (
        _shb(o)
        + _block(o, 4, _option(o, 0, b""))  # name resolution block
        + _idb(o, 1, 65535, tsresol=9)
        + _idb(o, 101, 0, tsresol=0x80 | 20)  # 2^-20 s ticks
        + _epb(o, 0, ts, b"frame-0")
        + _block(o, 5, struct.pack(o + "III", 0, 0, 0))  # interface statistics block
        + _block(o, 0x00000BAD, b"custom data")  # custom block
        + _block(o, 3, struct.pack(o + "I", 5) + b"short")  # simple packet block
        + _epb(o, 1, 3 << 20, b"raw-ip")
        + _block(o, 2, struct.pack(o + "HHIIII", 0, 0, 0, 5000, 3, 9) + b"opb\0")  # obsolete
    )
    path = tmp_path / "ns.pcapng"
    path.write_bytes(blob)
    frames, cap = _read(path)
    assert (cap.format, cap.linktype, cap.nanosecond, cap.snaplen) == ("pcapng", 1, True, 65535)
    assert cap.problem is None
    assert frames == [
        (ts, 7, 1, b"frame-0"),
        (ts, 5, 1, b"short"),  # a simple packet block reuses the previous timestamp
        (3_000_000_000, 6, 101, b"raw-ip"),
        (5000, 9, 1, b"opb"),  # obsolete packet block, ns ticks of interface 0
    ]
    assert cap.packets == 4 and cap.bytes == 7 + 5 + 6 + 3


def test_pcapng_big_endian_and_several_sections(tmp_path: Path) -> None:
    blob = (
        _shb(">")
        + _idb(">", 113)
        + _epb(">", 0, 1_500_000_000_000_001, b"be-frame", wire=100)
        + _shb("<")
        + _idb("<", 1, tsresol=3)
        + _epb("<", 0, 1_500_000_000_001, b"le-frame")
    )
    path = tmp_path / "be.pcapng"
    path.write_bytes(blob)
    frames, cap = _read(path)
    assert cap.linktype == 113 and not cap.nanosecond and cap.problem is None
    assert frames == [
        (1_500_000_000_000_001_000, 100, 113, b"be-frame"),
        (1_500_000_000_001_000_000, 8, 1, b"le-frame"),
    ]


def test_pcapng_truncated_and_corrupt(tmp_path: Path) -> None:
    o = "<"
    good = _shb(o) + _idb(o, 1) + _epb(o, 0, 10, b"a" * 40)
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(good + _epb(o, 0, 20, b"b" * 40)[:50])
    frames, cap = _read(cut)
    assert [f[3] for f in frames] == [b"a" * 40, b"b" * 22]
    assert cap.packets == 2
    assert cap.problem is not None and cap.problem.startswith("truncated inside pcapng block")

    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(good + struct.pack("<II", 6, 30) + b"\0" * 40)
    frames, cap = _read(bad)
    assert len(frames) == 1
    assert cap.problem == f"corrupt pcapng block at byte {len(good)} (block length 30)"

    undefined = tmp_path / "undef.pcapng"
    undefined.write_bytes(good + _epb(o, 3, 20, b"x"))
    frames, cap = _read(undefined)
    assert len(frames) == 1 and "undefined interface 3" in (cap.problem or "")


def test_pcapng_corrupt_section_header_fails_at_open(tmp_path: Path) -> None:
    path = tmp_path / "shb.pcapng"
    path.write_bytes(struct.pack("<III", 0x0A0D0D0A, 28, 0xDEADBEEF) + b"\0" * 16)
    with pytest.raises(CaptureFileError, match=r"shb\.pcapng: corrupt pcapng block at offset 0"):
        open_capture(path)


# -- robustness ------------------------------------------------------------------------------

_PCAP_HEADER = io.BytesIO()
write_pcap_header(_PCAP_HEADER, 1, snaplen=65535, nanosecond=False)
_HEADERS = [_PCAP_HEADER.getvalue(), _shb("<") + _idb("<", 1), _shb(">") + _idb(">", 1, 1500)]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(header=st.sampled_from(_HEADERS), tail=st.binary(max_size=600))
def test_random_bytes_after_header_never_raise(tmp_path: Path, header: bytes, tail: bytes) -> None:
    path = tmp_path / "fuzz.cap"
    path.write_bytes(header + tail)
    with open_capture(path) as cap:
        frames = list(cap)
    assert cap.packets == len(frames)
    assert cap.bytes == sum(len(f[3]) for f in frames)
    for ts, wire, linktype, data in frames:
        assert isinstance(ts, int) and isinstance(wire, int) and isinstance(data, bytes)
        assert linktype == 1


def test_fifo_input(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this platform")
    fifo = tmp_path / "live.pcap"
    os.mkfifo(fifo)
    payload = io.BytesIO()
    write_pcap_header(payload, 1)
    payload.write(pcap_record(5, 3, b"abc"))

    def writer() -> None:
        with open(fifo, "wb") as f:
            f.write(payload.getvalue())

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    frames, cap = _read(fifo)
    thread.join(timeout=10)
    assert frames == [(5, 3, 1, b"abc")] and cap.problem is None


_BLOCK_TYPES = [1, 2, 3, 4, 5, 6, 0x0A0D0D0A, 0x40000BAD]


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    blocks=st.lists(
        st.tuples(
            st.sampled_from(_BLOCK_TYPES),
            st.binary(max_size=80),
            st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)),
        ),
        max_size=8,
    ),
    order=st.sampled_from("<>"),
)
def test_random_pcapng_blocks_never_raise(
    tmp_path: Path, blocks: list[tuple[int, bytes, int | None]], order: str
) -> None:
    blob = _shb(order) + _idb(order, 1, tsresol=9)
    for btype, body, bad_length in blocks:
        block = _block(order, btype, body)
        if bad_length is not None:
            block = block[:4] + struct.pack(order + "I", bad_length) + block[8:]
        blob += block
    path = tmp_path / "fuzz.pcapng"
    path.write_bytes(blob)
    with open_capture(path) as cap:
        frames = list(cap)
    assert cap.packets == len(frames)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(
        st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 400), st.binary(max_size=300)),
        max_size=10,
    )
)
def test_random_pcap_records_never_raise(
    tmp_path: Path, records: list[tuple[int, int, bytes]]
) -> None:
    blob = _HEADERS[0]
    for caplen_field, wire, data in records:
        blob += struct.pack("<IIII", 1, 2, caplen_field % 70000, wire) + data
    path = tmp_path / "fuzz.pcap"
    path.write_bytes(blob)
    with open_capture(path) as cap:
        frames = list(cap)
    assert cap.packets == len(frames)
    assert cap.bytes == sum(len(f[3]) for f in frames)
