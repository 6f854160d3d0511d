"""Per-alert evidence: the packets of an alert's hosts around its detections, cut from the ring.

The window of an alert runs from ``before_s`` before its first detection to ``after_s`` after
its last one. :meth:`Evidence.schedule` records (or widens) that window when the manager
creates or updates the alert; :meth:`Evidence.extract_due` does the work later, once the
ring holds the whole window (its newest packet is past the window's end, or the wall clock
is, for a quiet link), and never on the capture hot path. Extraction is incremental: a
re-detected alert only appends packets after what its file already covers, so packets the
ring has since rotated out stay in the evidence. Each file keeps under its own budget (oldest
packets out) and all files together under the evidence budget (oldest files out).

Which packets belong to the hosts: a cheap byte search for the packed addresses first, then
the struct decoder confirms the address is in an IP (or ARP) header, so payload bytes that
happen to look like an address do not pull packets in.
"""

from __future__ import annotations

import heapq
import ipaddress
import os
import shutil
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from otwatch.agent.capture.config import EvidenceConfig
from otwatch.agent.capture.evidence_cut import (
    CutJob,
    FilePlan,
    Interrupted,
    SegmentFiles,
    SegmentRef,
    cut,
    plan_file,
    write_file,
)
from otwatch.agent.capture.pcapfile import Frame
from otwatch.agent.capture.ring import (
    EVICTED_STATE,
    file_header,
    iter_segment,
    resolve_path,
    store_path,
)
from otwatch.agent.decode.headers import decode
from otwatch.agent.store.db import Store
from otwatch.agent.store.models import Alert
from otwatch.agent.store.models_pcap import PcapEvidence, PcapSegment
from otwatch.agent.store.state import get_state
from otwatch.errors import OtwatchError
from otwatch.fileout import check_output, open_output
from otwatch.timeutil import format_iso

__all__ = [
    "Evidence",
    "EvidenceNotFound",
    "ExportResult",
    "HostMatcher",
    "PcapUnavailable",
    "alert_hosts",
    "export_alert_pcap",
    "ring_frames",
]

_NS = 1_000_000_000
WALL_GRACE_NS = 5 * _NS
_SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}
"""A window is complete when the wall clock is this far past its end even if traffic stops."""
_REC_HDR = 16
_pack_rec = struct.Struct("<IIII").pack


class PcapUnavailable(OtwatchError):
    """The packets of an alert are no longer (or were never) in the ring."""


class EvidenceNotFound(OtwatchError):
    """No alert with that id."""


def alert_hosts(alert: Alert) -> list[str]:
    """The addresses whose packets make an alert's evidence: its IPs, else its MACs."""
    ips = [a for a in (alert.source_address, alert.destination_address) if a]
    if ips:
        return sorted(set(ips))
    return sorted({m.lower() for m in (alert.source_mac, alert.destination_mac) if m})


class HostMatcher:
    """Is a frame to or from one of ``hosts`` (IP addresses or MAC addresses)?"""

    def __init__(self, hosts: Iterable[str]) -> None:
        self.ips: set[str] = set()
        self.packed4: set[bytes] = set()
        self.macs: set[bytes] = set()
        needles: set[bytes] = set()
        for host in hosts:
            if ":" in host and len(host) == 17 and host.count(":") == 5:
                mac = bytes.fromhex(host.replace(":", ""))
                self.macs.add(mac)
                needles.add(mac)
                continue
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                continue
            self.ips.add(str(ip))
            needles.add(ip.packed)
            if ip.version == 4:
                self.packed4.add(ip.packed)
        self.needles = tuple(needles)

    def __bool__(self) -> bool:
        return bool(self.needles)

    def __call__(self, frame: Frame) -> bool:
        data = frame[3]
        for needle in self.needles:
            if needle in data:
                break
        else:
            return False
        if frame[2] == 1 and data[12:14] == b"\x08\x00" and len(data) >= 34 and self.packed4:
            # untagged Ethernet + IPv4, the common case: the addresses sit at fixed offsets
            return data[26:30] in self.packed4 or data[30:34] in self.packed4
        rec = decode(*frame)
        ips = self.ips
        if ips and (
            rec.src_ip in ips
            or rec.dst_ip in ips
            or rec.arp_sender_ip in ips
            or rec.arp_target_ip in ips
        ):
            return True
        macs = self.macs
        return bool(macs) and (rec.src_mac in macs or rec.dst_mac in macs)


def _segments(session: Session, data_dir: Path, start_ns: int, end_ns: int) -> list[SegmentRef]:
    rows = session.execute(
        select(
            PcapSegment.path,
            PcapSegment.bytes,
            PcapSegment.linktype,
            PcapSegment.nanosecond,
            PcapSegment.first_ns,
            PcapSegment.last_ns,
        )
        .where(
            PcapSegment.first_ns.is_not(None),
            PcapSegment.first_ns <= end_ns,
            PcapSegment.last_ns >= start_ns,
        )
        .order_by(PcapSegment.first_ns, PcapSegment.id)
    ).all()
    return [
        SegmentRef(resolve_path(p, data_dir), size, lt, ns, first, last)
        for p, size, lt, ns, first, last in rows
    ]


def ring_frames(
    store: Store, start_ns: int, end_ns: int, matcher: HostMatcher | None = None
) -> tuple[list[SegmentRef], Iterator[Frame]]:
    """The ring's frames in ``[start_ns, end_ns]`` (optionally only ``matcher``'s), merged
    in time order across writers; also returns the segments read."""
    with store.session() as session:
        refs = _segments(session, Path(store.data_dir), start_ns, end_ns)
    iters = [iter_segment(ref.path, ref.limit, start_ns, end_ns) for ref in refs]
    merged: Iterator[Frame] = (
        iters[0] if len(iters) == 1 else heapq.merge(*iters, key=lambda f: f[0])
    )
    if matcher is not None:
        merged = filter(matcher, merged)
    return refs, merged


def _ring_oldest_ns(session: Session) -> int | None:
    return session.scalar(select(func.min(PcapSegment.first_ns)))


def _unavailable_message(session: Session, start_ns: int, end_ns: int) -> str:
    oldest = _ring_oldest_ns(session)
    evicted = get_state(session, EVICTED_STATE, {}) or {}
    span = f"{format_iso(start_ns)} to {format_iso(end_ns)}"
    if evicted.get("until_ns", 0) >= start_ns:
        return (
            f"PCAP not available: rotated out at {format_iso(evicted.get('at_ns'))} "
            f"(packets {span}; the ring now starts at {format_iso(oldest) or 'nothing'})"
        )
    if oldest is None:
        return f"PCAP not available: the ring is empty (packets {span} were never recorded)"
    return f"PCAP not available: the ring holds no packets from {span}"


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
        stream: BinaryIO | None = None,
        has_header: bool = False,
    ) -> None:
        self.path = path
        self._stream, self._has_header = stream, has_header
        self._limit = chunk
        self.linktype = linktype
        self.nanosecond = nanosecond
        self.packets = 0
        self.bytes = 0
        self._f = None
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


def _file_format(path: Path) -> tuple[int, bool] | None:
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24:
        return None
    magic = int.from_bytes(head[:4], "little")
    return int.from_bytes(head[20:24], "little") & 0xFFFF, magic == 0xA1B23C4D


class _Job:
    """One alert's extraction within a pass."""

    __slots__ = (
        "alert_id",
        "covered",
        "cut",
        "end",
        "matcher",
        "packets_before",
        "path",
        "row",
        "start",
    )

    def __init__(self, row: PcapEvidence, directory: Path) -> None:
        self.row = row
        self.alert_id = row.alert_id
        self.start = (
            row.window_start_ns if row.covered_until_ns is None else row.covered_until_ns + 1
        )
        self.end = row.window_end_ns
        self.matcher = HostMatcher(row.hosts)
        self.path = directory / f"alert-{row.alert_id}.pcap"
        if row.path is None or row.status == "evicted":
            self.path.unlink(missing_ok=True)
        elif self.path.exists() and self.path.stat().st_size > row.bytes:
            # an extraction interrupted before its bookkeeping: forget what it appended
            os.truncate(self.path, row.bytes)
        self.packets_before = row.packets if row.path else 0
        self.cut: CutJob | None = None
        self.covered = False
        """The ring has segments in this job's window."""

    def plan(self, refs: list[SegmentRef], max_bytes: int) -> CutJob:
        """The pass's view of this job. A new file takes the link type of the first segment
        of the job's window and nanoseconds if any of them has them (the pass reads more
        segments: the window's alone decide, as when the alert is cut on its own); an
        existing file keeps its format."""
        own = [r for r in refs if r.first_ns <= self.end and r.last_ns >= self.start]
        self.covered = bool(own)
        default_linktype = own[0].linktype if own else 1
        nanosecond = any(r.nanosecond for r in own)
        fmt = _file_format(self.path)
        if fmt is not None:
            default_linktype, nanosecond = fmt
        self.cut = CutJob(
            self.matcher, self.start, self.end, default_linktype, nanosecond, max_bytes - 24
        )
        return self.cut


class Evidence:
    """Schedules and extracts per-alert evidence files (one instance per agent)."""

    def __init__(self, store: Store, config: EvidenceConfig, *, wall_ns=time.time_ns) -> None:
        self.store = store
        self.config = config
        self.wall_ns = wall_ns
        self.data_dir = Path(store.data_dir)
        self.directory = Path(config.directory)
        self.before_ns = int(config.before_s * _NS)
        self.after_ns = int(config.after_s * _NS)
        self.extracted = 0

    # -- scheduling (cheap; at manager flush time) ----------------------------------------

    def schedule(self, alert_ids: Iterable[int]) -> int:
        """Open or widen the evidence window of alerts just created or detected again."""
        ids = sorted(set(alert_ids))
        if not ids:
            return 0
        now = self.wall_ns()
        changed = 0
        with self.store.session() as session:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                alerts = session.scalars(select(Alert).where(Alert.id.in_(chunk))).all()
                rows = {
                    r.alert_id: r
                    for r in session.scalars(
                        select(PcapEvidence).where(PcapEvidence.alert_id.in_(chunk))
                    )
                }
                for alert in alerts:
                    end = alert.last_detection_ns + self.after_ns
                    row = rows.get(alert.id)
                    if row is None:
                        session.add(
                            PcapEvidence(
                                alert_id=alert.id,
                                status="pending",
                                path=None,
                                hosts=alert_hosts(alert),
                                window_start_ns=alert.first_detection_ns - self.before_ns,
                                window_end_ns=end,
                                covered_until_ns=None,
                                packets=0,
                                bytes=0,
                                message=None,
                                updated_ns=now,
                            )
                        )
                        changed += 1
                    elif end > row.window_end_ns:
                        row.window_end_ns = end
                        row.status = "pending"
                        row.updated_ns = now
                        changed += 1
        return changed

    # -- extraction (off the hot path) ----------------------------------------------------

    def due(self, *, force: bool = False) -> list[int]:
        """Alert ids whose window the ring now holds completely (all pending with ``force``),
        high severity first, then by window end."""
        with self.store.session() as session:
            rank = case(_SEVERITY_RANK, value=Alert.severity, else_=len(_SEVERITY_RANK))
            query = (
                select(PcapEvidence.alert_id)
                .outerjoin(Alert, Alert.id == PcapEvidence.alert_id)
                .where(PcapEvidence.status == "pending")
            )
            if not force:
                high = session.scalar(select(func.max(PcapSegment.last_ns))) or 0
                horizon = max(high, self.wall_ns() - WALL_GRACE_NS)
                query = query.where(PcapEvidence.window_end_ns <= horizon)
            order = (rank, PcapEvidence.window_end_ns, PcapEvidence.alert_id)
            return list(session.scalars(query.order_by(*order)))

    def extract_due(
        self,
        *,
        force: bool = False,
        deadline: float | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> int:
        """Extract due windows, at most :attr:`EvidenceConfig.pass_alerts` per pass over the
        ring, until none is left, ``deadline`` (a ``time.monotonic`` value) has passed or
        ``stopping()``; what is left stays pending (the backlog) for the next call. A pass
        under way finishes past the deadline (a pass cut short would write nothing); only
        ``stopping()`` cuts it short."""
        done = 0
        due = self.due(force=force)
        step = max(1, self.config.pass_alerts)
        for start in range(0, len(due), step):
            try:
                self.extract_many(due[start : start + step], interrupt=stopping)
            except Interrupted:
                break  # the pass stays pending
            done += len(due[start : start + step])
            self.enforce_budget()
            if (deadline is not None and time.monotonic() >= deadline) or (
                stopping is not None and stopping()
            ):
                break
        return done

    def extract_many(
        self, alert_ids: Iterable[int], *, interrupt: Callable[[], bool] | None = None
    ) -> dict[int, PcapEvidence]:
        """Extend the evidence of these alerts up to their window ends, in one pass over the
        ring (:mod:`~otwatch.agent.capture.evidence_cut`). Returns the updated rows
        (detached). ``interrupt`` may abort the pass (:class:`Interrupted`) before any file
        is written; the rows are then left as they were."""
        with self.store.session() as session:
            rows = list(
                session.scalars(
                    select(PcapEvidence).where(PcapEvidence.alert_id.in_(list(alert_ids)))
                )
            )
            for row in rows:
                session.expunge(row)
        if not rows:
            return {}
        self.directory.mkdir(parents=True, exist_ok=True)
        jobs = [_Job(row, self.directory) for row in rows]
        live = [job for job in jobs if job.matcher and job.start <= job.end]
        plans: dict[int, FilePlan] = {}
        now = self.wall_ns()
        doomed: set[int] = set()
        if live:
            lo = min(job.start for job in live)
            hi = max(job.end for job in live)
            with self.store.session() as session:
                refs = _segments(session, self.data_dir, lo, hi)
            limit = self.config.alert_max_bytes
            cuts = [job.plan(refs, limit) for job in live]
            odd = cut(refs, cuts, interrupt) if refs else set()
            files = SegmentFiles(refs, odd)
            try:
                for job in live:
                    plans[job.alert_id] = plan_file(
                        job.path, job.cut, files, job.packets_before, limit
                    )
                doomed = self._doomed(plans, now)
                for job in live:
                    if job.alert_id in doomed:
                        job.path.unlink(missing_ok=True)
                    else:
                        write_file(plans[job.alert_id], files, job.path.with_suffix(".trim"))
            finally:
                files.close()
        with self.store.session() as session:
            return {
                job.alert_id: self._finish(
                    session, job, plans.get(job.alert_id), now, job.alert_id in doomed
                )
                for job in jobs
            }

    def _doomed(self, plans: dict[int, FilePlan], now: int) -> set[int]:
        """Alerts whose new file :meth:`enforce_budget` would delete as soon as it is written
        (least recently extended first, these files being the newest): they are not
        written at all. Under an alert flood this is most of the writing saved."""
        sizes = {aid: plan.size for aid, plan in plans.items() if plan.packets}
        with self.store.session() as session:
            others = session.execute(
                select(PcapEvidence.updated_ns, PcapEvidence.alert_id, PcapEvidence.bytes).where(
                    PcapEvidence.path.is_not(None), PcapEvidence.alert_id.not_in(list(plans))
                )
            ).all()
        entries = sorted([*map(tuple, others), *((now, aid, size) for aid, size in sizes.items())])
        total = sum(entry[2] for entry in entries)
        doomed = set()
        for _updated, aid, size in entries:
            if total <= self.config.max_bytes:
                break
            total -= size
            if aid in sizes:
                doomed.add(aid)
        return doomed

    def _finish(
        self, session: Session, job: _Job, plan: FilePlan | None, now: int, doomed: bool
    ) -> PcapEvidence:
        path = job.path
        if plan is None:  # nothing to look for: the file stays as it is
            total_packets = job.packets_before
            size = path.stat().st_size if path.exists() else 0
        else:
            total_packets, size = plan.packets, plan.size
        current = session.get(PcapEvidence, job.alert_id)
        if current is None:  # the alert was deleted meanwhile
            path.unlink(missing_ok=True)
            return job.row
        current.covered_until_ns = job.end
        current.packets = total_packets
        current.bytes = size if total_packets else 0
        current.updated_ns = now
        current.path = store_path(path, self.data_dir) if total_packets else None
        if current.window_end_ns > job.end:
            current.status = "pending"  # widened again while we were extracting
        elif total_packets:
            current.status, current.message = "ready", None
        elif not job.covered:
            current.status = "unavailable"
            current.message = _unavailable_message(session, job.start, job.end)
        else:
            current.status = "empty"
            current.message = "no packets of the alert's hosts in the window"
        if not total_packets:
            path.unlink(missing_ok=True)
        elif doomed:  # as enforce_budget would have, right after writing it
            current.status, current.path, current.bytes = "evicted", None, 0
            current.message = f"deleted for the evidence budget at {format_iso(now)}"
        self.extracted += 1
        session.flush()
        session.expunge(current)
        return current

    def enforce_budget(self) -> int:
        """Delete the least recently extended evidence files beyond the evidence budget."""
        evicted = 0
        with self.store.session() as session:
            total = (
                session.scalar(
                    select(func.coalesce(func.sum(PcapEvidence.bytes), 0)).where(
                        PcapEvidence.path.is_not(None)
                    )
                )
                or 0
            )
            if total <= self.config.max_bytes:
                return 0
            rows = session.scalars(
                select(PcapEvidence)
                .where(PcapEvidence.path.is_not(None))
                .order_by(PcapEvidence.updated_ns, PcapEvidence.alert_id)
            )
            now = self.wall_ns()
            for row in rows:
                if total <= self.config.max_bytes:
                    break
                resolve_path(row.path, self.data_dir).unlink(missing_ok=True)
                total -= row.bytes
                row.status, row.path, row.bytes = "evicted", None, 0
                row.message = f"deleted for the evidence budget at {format_iso(now)}"
                row.updated_ns = now
                evicted += 1
        return evicted


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
        unavailable = _unavailable_message(session, start, end)
    matcher = HostMatcher(hosts)
    if not matcher:
        raise PcapUnavailable(f"PCAP not available: alert {alert_id} names no host address")
    check_output(out, force=force)
    fmt = _file_format(stored) if stored is not None else None
    source = "evidence" if fmt is not None else "ring"
    if fmt is not None:
        start = (covered or start) + 1
    refs, frames = ring_frames(store, start, end, matcher)
    linktype = fmt[0] if fmt else (refs[0].linktype if refs else 1)
    nanosecond = fmt[1] if fmt else any(r.nanosecond for r in refs)
    packets = size = 0
    with open_output(out, force=force) as sink:
        if fmt is not None:
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
            oldest = _ring_oldest_ns(session)
            evicted = get_state(session, EVICTED_STATE, {}) or {}
        if oldest is not None and oldest > start and evicted.get("until_ns", 0) >= start:
            note = (
                f"partial: packets before {format_iso(oldest)} were rotated out of the ring "
                f"at {format_iso(evicted.get('at_ns'))}"
            )
    return ExportResult(Path(out), packets, size, source, note)


def _copy_pcap(path: Path, sink: BinaryIO) -> tuple[int, int]:
    """Copy the pcap file ``path`` to ``sink``; returns (packets, bytes) copied."""
    with open(path, "rb") as f:
        shutil.copyfileobj(f, sink)
        size = f.tell()
    return sum(1 for _ in iter_segment(path)), size
