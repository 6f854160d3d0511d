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

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from otwatch.agent.capture.config import EvidenceConfig
from otwatch.agent.capture.evidence_cut import CutJob, Interrupted, SegmentRef
from otwatch.agent.capture.evidence_files import FilePlan, SegmentFiles, plan_file, write_file
from otwatch.agent.capture.evidence_hosts import HostMatcher, alert_hosts
from otwatch.agent.capture.evidence_indexed import cut_pass
from otwatch.agent.capture.evidence_twins import Twins, unshare
from otwatch.agent.capture.evidence_window import file_format, unavailable_message, window_segments
from otwatch.agent.capture.ring import resolve_path, store_path
from otwatch.agent.store.db import Store
from otwatch.agent.store.models import Alert
from otwatch.agent.store.models_pcap import PcapEvidence, PcapSegment
from otwatch.timeutil import format_iso

__all__ = [
    "Evidence",
]

_NS = 1_000_000_000
WALL_GRACE_NS = 5 * _NS
_SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}
"""A window is complete when the wall clock is this far past its end even if traffic stops."""


class _Job:
    """One alert's extraction within a pass."""

    __slots__ = (
        "alert_id",
        "covered",
        "cut",
        "end",
        "fresh",
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
            unshare(self.path)
            os.truncate(self.path, row.bytes)
        self.packets_before = row.packets if row.path else 0
        self.cut: CutJob | None = None
        self.covered = False
        """The ring has segments in this job's window."""
        self.fresh = False
        """No file yet: the pass writes all of it."""

    def plan(self, refs: list[SegmentRef], max_bytes: int) -> CutJob:
        """The pass's view of this job. A new file takes the link type of the first segment
        of the job's window and nanoseconds if any of them has them (the pass reads more
        segments: the window's alone decide, as when the alert is cut on its own); an
        existing file keeps its format."""
        own = [r for r in refs if r.first_ns <= self.end and r.last_ns >= self.start]
        self.covered = bool(own)
        default_linktype = own[0].linktype if own else 1
        nanosecond = any(r.nanosecond for r in own)
        fmt = file_format(self.path)
        self.fresh = fmt is None
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
        self.use_index = True
        """Read segments through their indexes (False: walk every record header)."""
        self.link_twins = True
        """Write a file of the same content as another of the pass as a hard link to it."""

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
                refs = window_segments(session, self.data_dir, lo, hi)
            limit = self.config.alert_max_bytes
            cuts = [job.plan(refs, limit) for job in live]
            odd = cut_pass(refs, cuts, interrupt, use_index=self.use_index) if refs else set()
            files = SegmentFiles(refs, odd, use_index=self.use_index)
            try:
                for job in live:
                    assert job.cut is not None  # set by job.plan() above
                    plans[job.alert_id] = plan_file(
                        job.path, job.cut, files, job.packets_before, limit
                    )
                doomed = self._doomed(plans, now)
                twins = Twins()
                for job in live:
                    plan = plans[job.alert_id]
                    if job.alert_id in doomed:
                        job.path.unlink(missing_ok=True)
                    elif not (job.fresh and self.link_twins and twins.link(plan)):
                        if not plan.rewrite:  # appended to in place
                            unshare(job.path)
                        write_file(plan, files, job.path.with_suffix(".trim"))
                        if job.fresh:
                            twins.add(plan)
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
            current.message = unavailable_message(session, job.start, job.end)
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
                assert row.path is not None  # the query selects rows with a path
                resolve_path(row.path, self.data_dir).unlink(missing_ok=True)
                total -= row.bytes
                row.status, row.path, row.bytes = "evicted", None, 0
                row.message = f"deleted for the evidence budget at {format_iso(now)}"
                row.updated_ns = now
                evicted += 1
        return evicted
