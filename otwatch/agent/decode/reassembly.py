"""TCP stream reassembly for framed industrial protocols (TPKT, DNP3, IEC 104, EtherNet/IP).

A protocol data unit may span TCP segments, and one segment may carry several. ``Stream``
keeps the bytes of one direction of one flow that do not yet form a whole frame, bounded by
``max_buffer``; ``FrameReader.feed`` takes a segment and returns the complete frames.

- The first segment seen fixes the expected sequence number, so captures that start mid-stream
  work. Until a valid frame start has been seen, bytes that do not frame are skipped silently
  (the capture began inside a PDU); after that, skipped bytes are reported as garbage.
- Retransmitted bytes are trimmed; a gap (lost segment) drops the buffer and resynchronises.
- Overflow (a partial frame longer than ``max_buffer``) drops the buffer. Every drop is counted
  in ``ReassemblyStats``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FrameReader", "ReassemblyStats", "Stream"]

_MASK = 0xFFFFFFFF
_HALF = 1 << 31

FrameLength = Callable[[bytes, int], int | None]
"""``(buffer, offset) -> total frame length``, None when more bytes are needed to tell, or 0
when ``offset`` is not a valid frame start."""
Resync = Callable[[bytes, int], int]
"""``(buffer, offset) -> offset of the next plausible frame start at or after offset``, -1."""


@dataclass(slots=True)
class ReassemblyStats:
    segments: int = 0
    frames: int = 0
    gaps: int = 0
    """Segments that arrived after missing bytes (the buffer was dropped)."""
    retransmissions: int = 0
    overflows: int = 0
    """Partial frames dropped because they exceeded the buffer bound."""
    garbage_bytes: int = 0
    """Bytes skipped in a synchronised stream because they did not form a frame."""


class Stream:
    """Reassembly state of one direction of one TCP flow."""

    __slots__ = ("buf", "next_seq", "synced")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.buf = b""
        self.synced = False


class FrameReader:
    """Splits a byte stream into frames with a protocol's ``frame_length`` and ``resync``."""

    def __init__(
        self,
        frame_length: FrameLength,
        resync: Resync,
        *,
        max_buffer: int = 65_536,
        stats: ReassemblyStats | None = None,
    ) -> None:
        self.frame_length = frame_length
        self.resync = resync
        self.max_buffer = max_buffer
        self.stats = stats or ReassemblyStats()

    def feed(self, stream: Stream, seq: int | None, data: bytes) -> tuple[list[bytes], int]:
        """Add one segment (``seq`` None for datagrams); returns ``(frames, garbage_bytes)``."""
        stats = self.stats
        stats.segments += 1
        if seq is not None:
            expected = stream.next_seq
            if expected is not None and seq != expected:
                behind = (expected - seq) & _MASK
                if behind < _HALF:  # old bytes: a retransmission, maybe with new data after it
                    stats.retransmissions += 1
                    if behind >= len(data):
                        return [], 0
                    data = data[behind:]
                    seq = expected
                else:  # bytes are missing: what is buffered can never complete
                    stats.gaps += 1
                    stream.buf = b""
                    stream.synced = False
            stream.next_seq = (seq + len(data)) & _MASK
        buf = stream.buf + data if stream.buf else data
        frames: list[bytes] = []
        garbage = 0
        off, size = 0, len(buf)
        frame_length, max_buffer = self.frame_length, self.max_buffer
        while off < size:
            n = frame_length(buf, off)
            if n is None:
                break
            if n <= 0 or n > max_buffer:
                nxt = self.resync(buf, off + 1)
                skipped = (size if nxt < 0 else nxt) - off
                if stream.synced:
                    garbage += skipped
                off += skipped
                continue
            if off + n > size:
                break
            frames.append(buf[off : off + n])
            stream.synced = True
            off += n
        rest = buf[off:] if off else buf
        if len(rest) > max_buffer:
            stats.overflows += 1
            rest = b""
            stream.synced = False
        stream.buf = rest
        stats.frames += len(frames)
        stats.garbage_bytes += garbage
        return frames, garbage
