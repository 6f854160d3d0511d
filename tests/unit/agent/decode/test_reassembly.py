"""TCP stream reassembly: frames across segments, several per segment, gaps, retransmissions,
mid-stream starts, garbage and the buffer bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from otwatch.agent.decode.reassembly import FrameReader, Stream


def frame_length(buf: bytes, off: int) -> int | None:
    """Test protocol: 0xAA, length octet, payload."""
    if buf[off] != 0xAA:
        return 0
    if len(buf) - off < 2:
        return None
    return 2 + buf[off + 1] if buf[off + 1] else 0


def resync(buf: bytes, off: int) -> int:
    return buf.find(b"\xaa", off)


def pdu(body: bytes) -> bytes:
    return b"\xaa" + bytes([len(body)]) + body


def reader(**kw) -> FrameReader:
    return FrameReader(frame_length, resync, **kw)


def test_frame_split_across_segments_and_two_in_one() -> None:
    r, s = reader(), Stream()
    data = pdu(b"abc") + pdu(b"defg")
    assert r.feed(s, 100, data[:3]) == ([], 0)
    assert r.feed(s, 103, data[3:6]) == ([pdu(b"abc")], 0)
    assert r.feed(s, 106, data[6:]) == ([pdu(b"defg")], 0)
    assert s.buf == b"" and r.stats.frames == 2


def test_retransmission_is_trimmed_and_duplicates_ignored() -> None:
    r, s = reader(), Stream()
    data = pdu(b"abcdef")
    r.feed(s, 10, data[:4])
    assert r.feed(s, 10, data[:4]) == ([], 0)  # exact duplicate
    assert r.feed(s, 12, data[2:]) == ([data], 0)  # overlaps two old bytes
    assert r.stats.retransmissions == 2


def test_gap_drops_the_partial_frame_and_resynchronises() -> None:
    r, s = reader(), Stream()
    r.feed(s, 0, pdu(b"abcdef")[:4])
    frames, _ = r.feed(s, 50, pdu(b"xy"))
    assert frames == [pdu(b"xy")]
    assert r.stats.gaps == 1


def test_mid_stream_start_skips_silently_then_reports_garbage() -> None:
    r, s = reader(), Stream()
    frames, garbage = r.feed(s, 0, b"tail-of-a-pdu" + pdu(b"ok"))
    assert frames == [pdu(b"ok")] and garbage == 0
    frames, garbage = r.feed(s, 17, b"\x00\x01\x02" + pdu(b"z"))
    assert frames == [pdu(b"z")] and garbage == 3


def test_sequence_wraps_around() -> None:
    r, s = reader(), Stream()
    data = pdu(b"wrap!")
    r.feed(s, 0xFFFFFFFE, data[:3])
    assert r.feed(s, 1, data[3:]) == ([data], 0)


def test_frames_longer_than_the_bound_are_not_frame_starts() -> None:
    r, s = reader(max_buffer=8), Stream()
    assert r.feed(s, 0, b"\xaa\x07" + b"1234567") == ([], 0)
    assert s.buf == b""


def test_overflow_drops_the_buffer() -> None:
    undecided = FrameReader(lambda buf, off: None, resync, max_buffer=8)
    s = Stream()
    undecided.feed(s, 0, b"12345")
    assert s.buf == b"12345"
    undecided.feed(s, 5, b"6789")
    assert s.buf == b"" and undecided.stats.overflows == 1


def test_datagrams_have_no_sequence() -> None:
    r = reader()
    assert r.feed(Stream(), None, pdu(b"a") + pdu(b"b")) == ([pdu(b"a"), pdu(b"b")], 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=10), st.integers(0, 2**32 - 1))
def test_arbitrary_segments_never_raise_and_stay_bounded(segments, seq) -> None:
    r, s = reader(max_buffer=64), Stream()
    for data in segments:
        frames, garbage = r.feed(s, seq, data)
        assert all(f[0] == 0xAA and len(f) == 2 + f[1] for f in frames)
        assert garbage >= 0 and len(s.buf) <= 64
        seq = (seq + len(data)) & 0xFFFFFFFF
