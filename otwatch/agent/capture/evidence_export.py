"""Exporting one alert's packets from the ring to a PCAP file on demand (``otwatch pcap``), with
a note when the ring no longer holds the whole window."""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from otwatch.agent.capture.evidence_hosts import HostMatcher, alert_hosts
from otwatch.agent.capture.evidence_window import (
    file_format,
    ring_frames,
    ring_oldest_ns,
    unavailable_message,
)
from otwatch.agent.capture.pcapfile import Frame
from otwatch.agent.capture.pcapwrite import file_header
from otwatch.agent.capture.ring import EVICTED_STATE, resolve_path
from otwatch.agent.capture.ring_segments import iter_segment
from otwatch.agent.store.db import Store
from otwatch.agent.store.models import Alert
from otwatch.agent.store.models_pcap import PcapEvidence
from otwatch.agent.store.state import get_state
from otwatch.errors import OtwatchError
from otwatch.fileout import check_output, open_output
from otwatch.timeutil import format_iso

_NS = 1_000_000_000
_pack_rec = struct.Struct("<IIII").pack
_REC_HDR = 16


class PcapUnavailable(OtwatchError):
    """The packets of an alert are no longer (or were never) in the ring."""


class EvidenceNotFound(OtwatchError):
    """No alert with that id."""


@dataclass(slots=True)
class ExportResult:
    path: Path
    packets: int
    bytes: int
    source: str
    """``evidence`` (the alert's stored file) or ``ring`` (extracted now)."""
    note: str | None = None


class _Appender:
    """Writes frames to a pcap file (new or appended), counting what it wrote."""

    def __init__(
        self,
        path: Path | None,
        linktype: int | None,
        nanosecond: bool,
        chunk: int = 1 << 20,
        *,
        stream: IO[bytes] | None = None,
        has_header: bool = False,
    ) -> None:
        self.path = path
        self._stream, self._has_header = stream, has_header
        self._limit = chunk
        self.linktype = linktype
        self.nanosecond = nanosecond
        self.packets = 0
        self.bytes = 0
        self._f: IO[bytes] | None = None
        self._chunk: list[bytes] = []
        self._chunk_bytes = 0

    def add(self, frame: Frame) -> None:
        ts, wlen, lt, data = frame
        if self._f is None and self._stream is not None:
            if self.linktype is None:
                self.linktype = lt
            self._f = self._stream
            if not self._has_header:
                self._f.write(file_header(self.linktype, self.nanosecond))
                self.bytes += 24
        if self._f is None:
            if self.linktype is None:
                self.linktype = lt
            assert self.path is not None  # a writer without a stream has a path
            exists = self.path.exists() and self.path.stat().st_size >= 24
            self._f = open(self.path, "ab")  # noqa: SIM115
            if not exists:
                self._f.truncate(0)
                self._f.write(file_header(self.linktype, self.nanosecond))
        if lt != self.linktype:
            return  # a pcap file has one link type; frames of another interface type are left
        sec, frac = divmod(ts, _NS)
        if not self.nanosecond:
            frac //= 1000
        self._chunk.append(_pack_rec(sec, frac, len(data), wlen))
        self._chunk.append(data)
        self._chunk_bytes += _REC_HDR + len(data)
        self.packets += 1
        self.bytes += _REC_HDR + len(data)
        if self._chunk_bytes >= self._limit:
            self._write()

    def _write(self) -> None:
        if self._f is not None and self._chunk:
            self._f.write(b"".join(self._chunk))
        self._chunk.clear()
        self._chunk_bytes = 0

    def close(self) -> None:
        self._write()
        if self._f is not None and self._stream is None:
            self._f.close()


def export_alert_pcap(
    store: Store,
    alert_id: int,
    out: str | Path,
    *,
    before_s: float = 30.0,
    after_s: float = 30.0,
    force: bool = False,
) -> ExportResult:
    """Write alert ``alert_id``'s packets to ``out`` (``-``: standard output) through
    :func:`otwatch.fileout.open_output`: its evidence file (completed from the ring when the
    window has grown since), or an extraction from the ring now."""
    data_dir = Path(store.data_dir)
    with store.session() as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise EvidenceNotFound(f"alert {alert_id} does not exist")
        row = session.get(PcapEvidence, alert_id)
        hosts = alert_hosts(alert)
        start = alert.first_detection_ns - int(before_s * _NS)
        end = alert.last_detection_ns + int(after_s * _NS)
        if row is not None:
            start, end = row.window_start_ns, max(end, row.window_end_ns)
            hosts = row.hosts or hosts
        stored = resolve_path(row.path, data_dir) if row is not None and row.path else None
        covered = row.covered_until_ns if row is not None else None
        unavailable = unavailable_message(session, start, end)
    matcher = HostMatcher(hosts)
    if not matcher:
        raise PcapUnavailable(f"PCAP not available: alert {alert_id} names no host address")
    check_output(out, force=force)
    fmt = file_format(stored) if stored is not None else None
    source = "evidence" if fmt is not None else "ring"
    if fmt is not None:
        start = (covered or start) + 1
    refs, frames = ring_frames(store, start, end, matcher)
    linktype = fmt[0] if fmt else (refs[0].linktype if refs else 1)
    nanosecond = fmt[1] if fmt else any(r.nanosecond for r in refs)
    packets = size = 0
    with open_output(out, force=force) as sink:
        if fmt is not None and stored is not None:
            packets, size = _copy_pcap(stored, sink)
        writer = _Appender(None, linktype, nanosecond, stream=sink, has_header=fmt is not None)
        try:
            for frame in frames:
                writer.add(frame)
        finally:
            writer.close()
        if source == "ring" and writer.packets == 0:
            if not refs:
                raise PcapUnavailable(unavailable)
            raise PcapUnavailable(
                f"PCAP not available: the ring holds no packets of {', '.join(hosts)} from "
                f"{format_iso(start)} to {format_iso(end)}"
            )
    packets += writer.packets
    size += writer.bytes
    note = None
    if source == "ring":
        with store.session() as session:
            oldest = ring_oldest_ns(session)
            evicted = get_state(session, EVICTED_STATE, {}) or {}
        if oldest is not None and oldest > start and evicted.get("until_ns", 0) >= start:
            note = (
                f"partial: packets before {format_iso(oldest)} were rotated out of the ring "
                f"at {format_iso(evicted.get('at_ns'))}"
            )
    return ExportResult(Path(out), packets, size, source, note)


def _copy_pcap(path: Path, sink: IO[bytes]) -> tuple[int, int]:
    """Copy the pcap file ``path`` to ``sink``; returns (packets, bytes) copied."""
    with open(path, "rb") as f:
        shutil.copyfileobj(f, sink)
        size = f.tell()
    return sum(1 for _ in iter_segment(path)), size
