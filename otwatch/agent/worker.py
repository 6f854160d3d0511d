"""A capture worker: sockets → PCAP ring → pipeline, one process per core.

Each worker owns its sockets (one per interface; with several workers they share a
PACKET_FANOUT group, so each sees whole flows), its own ring segments, flow table and
engines. Detections do not go to the store from here: :class:`ForwardingManager` merges them
per de-duplication key and sends a batch to the collector (the parent process) at every
tick, where the one :class:`~otwatch.agent.alerts.manager.AlertManager` decides. That is what
keeps alerts free of duplicates when two workers see the same host (see docs/capture.md).

:class:`CaptureLoop` is the loop itself, free of process plumbing so tests can drive it with
any :class:`~otwatch.agent.capture.source.CaptureSource`.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import select
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select as sql_select
from sqlalchemy.exc import SQLAlchemyError

from otwatch.agent.capture.config import CaptureConfig, RingConfig
from otwatch.agent.capture.opener import open_source
from otwatch.agent.capture.ring import RingWriter
from otwatch.agent.capture.source import CaptureSource
from otwatch.agent.decode.flows import DEFAULT_MAX_FLOWS
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.registry import ENGINES
from otwatch.agent.pipeline import Pipeline
from otwatch.agent.store.db import Store, StoreError, open_store
from otwatch.agent.store.models import BaselineFact
from otwatch.alerts.catalog import Catalog, load_catalog
from otwatch.errors import OtwatchError
from otwatch.gctune import tune_for_daemon

__all__ = ["CaptureLoop", "ForwardingManager", "WorkerSpec", "serve", "worker_main"]

log = logging.getLogger(__name__)

TICK_S = 1.0
"""Flush detections, ring buffers and counters at least this often (wall time)."""
POLL_MS = 100
"""How long an idle loop (nothing read, no backlog) waits for the sources to be readable."""
ANALYSIS_SLICE = 2048
"""Frames analysed between two looks at the kernel ring (about 30 ms of engine work)."""
MAX_BACKLOG = 500_000
"""Frames captured but not yet analysed, at most (about 250 bytes of memory each)."""
FINAL_ANALYSIS_S = 40.0
"""At a stop, analyse the backlog for at most this long (the collector waits 60 s)."""
DRAIN_TIMEOUT_S = 5.0
"""At a stop, how long each source may take to hand over what the kernel still holds."""

Send = Callable[[tuple], None]
Merged = list  # [detection, count, first_ns, last_ns]


class ForwardingManager:
    """Stands in for the AlertManager inside a worker: merges detections per dedup key and
    sends ``("det", worker, [(detection, count, first_ns, last_ns), ...])`` on ``flush``."""

    def __init__(
        self, store: Store, catalog: Catalog, send: Send, worker: int, max_pending: int = 5_000
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.send = send
        self.worker = worker
        self.max_pending = max_pending
        self.detections = 0
        self._pending: dict[str, Merged] = {}

    def observe(self, det: Detection) -> None:
        self.detections += 1
        item = self._pending.get(det.dedup_key)
        if item is None:
            self._pending[det.dedup_key] = [det, 1, det.ts_ns, det.ts_ns]
            if len(self._pending) >= self.max_pending:
                self.flush()
            return
        item[1] += 1
        if det.ts_ns < item[2]:
            item[2] = det.ts_ns
        elif det.ts_ns > item[3]:
            item[3] = det.ts_ns

    def repeat(self, det: Detection, ts_ns: int) -> None:
        """``observe(det)`` with its time replaced by ``ts_ns`` (built only if new)."""
        item = self._pending.get(det.dedup_key)
        if item is None:
            self.observe(det._replace(ts_ns=ts_ns))
            return
        self.detections += 1
        item[1] += 1
        if ts_ns < item[2]:
            item[2] = ts_ns
        elif ts_ns > item[3]:
            item[3] = ts_ns

    def flush(self) -> None:
        if self._pending:
            batch = [tuple(item) for item in self._pending.values()]
            self._pending = {}
            self.send(("det", self.worker, batch))


class CaptureLoop:
    """Reads sources, writes the ring, runs the pipeline; ticks about once a second."""

    def __init__(
        self,
        sources: Sequence[CaptureSource],
        pipeline: Pipeline,
        ring: RingWriter | None,
        *,
        send: Send,
        worker: int = 0,
        sync_baseline: bool = False,
        tick_s: float = TICK_S,
        max_backlog: int = MAX_BACKLOG,
    ) -> None:
        self.sources = list(sources)
        self.max_backlog = max_backlog
        self.skipped = 0
        """Frames recorded in the ring but left unanalysed under overload."""
        self.store_errors = 0
        self._backlog: deque[list] = deque()
        self._queued = 0
        self.pipeline = pipeline
        self.ring = ring
        self.send = send
        self.worker = worker
        self.sync_baseline = sync_baseline
        self.tick_s = tick_s
        self._baseline_seen = 0
        self._poller = select.poll()
        for src in self.sources:
            self._poller.register(src.fileno(), select.POLLIN | select.POLLERR)

    def run(self, stopping: Callable[[], bool]) -> None:
        """Capture until ``stopping()`` is true, then drain the sockets and flush.

        Capture comes first: every ready kernel block goes to the ring at once and joins the
        analysis backlog; the pipeline then works through at most ``ANALYSIS_SLICE`` frames
        before the sockets are looked at again. A burst the engines cannot follow thus
        waits in the backlog instead of overflowing the kernel ring; beyond ``max_backlog``
        frames the oldest are left unanalysed (counted), never unrecorded.
        """
        sources = self.sources
        poll = self._poller.poll
        backlog = self._backlog
        next_tick = time.monotonic() + self.tick_s
        self.pipeline.start_segment()
        busy = False
        while not stopping():
            got = self._capture()
            busy |= got
            if backlog:
                self._analyse(ANALYSIS_SLICE)
            now = time.monotonic()
            if now >= next_tick:
                if not busy:  # a quiet link: engines still detect silence and timeouts
                    self.pipeline.tick(time.time_ns())
                self.tick()
                busy = False
                next_tick = now + self.tick_s
            if not got and not backlog and sources:
                poll(POLL_MS)
        self.drain()
        self.finish()

    def _capture(self) -> bool:
        """Move every ready frame to the ring and the backlog; True if there were any."""
        got = False
        ring = self.ring
        backlog = self._backlog
        for src in self.sources:
            frames = src.read_batch()
            if frames:
                got = True
                if ring is not None:
                    self._ring_write(frames, src)
                backlog.append([src.name, frames, 0])
                self._queued += len(frames)
        if self._queued > self.max_backlog:
            self._shed()
        return got

    def _ring_write(self, frames: list, src: Any) -> None:
        """Frames to the ring; a failing database (disk full while a segment's index row is
        written) must not stop capture: counted, and the ring goes on at the next batch."""
        assert self.ring is not None  # the callers write only when there is a ring
        try:
            self.ring.write_batch(frames, src.linktype, src.nanosecond)
        except (StoreError, SQLAlchemyError) as exc:
            self.store_errors += 1
            if self.store_errors == 1 or self.store_errors % 100 == 0:
                log.error("worker %d: ring index write failed (%d so far): %s", self.worker,
                          self.store_errors, exc)  # fmt: skip

    def _shed(self) -> None:
        """Overload: leave the oldest frames unanalysed (they are in the ring)."""
        backlog = self._backlog
        while self._queued > self.max_backlog and len(backlog) > 1:
            _name, frames, pos = backlog.popleft()
            left = len(frames) - pos
            self._queued -= left
            self.skipped += left

    def _analyse(self, budget: int) -> None:
        process = self.pipeline.process_batch
        backlog = self._backlog
        while backlog and budget > 0:
            entry = backlog[0]
            name, frames, pos = entry
            end = min(len(frames), pos + budget)
            process(frames[pos:end] if pos or end < len(frames) else frames, name)
            done = end - pos
            budget -= done
            self._queued -= done
            if end == len(frames):
                backlog.popleft()
            else:
                entry[2] = end

    def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Read what the kernel accepted before the stop and analyse the whole backlog, so
        a clean stop loses nothing."""
        for src in self.sources:
            for frames in src.drain(timeout_s):
                if self.ring is not None:
                    self._ring_write(frames, src)
                self._backlog.append([src.name, frames, 0])
                self._queued += len(frames)
        deadline = time.monotonic() + FINAL_ANALYSIS_S
        while self._backlog:
            self._analyse(ANALYSIS_SLICE)
            if time.monotonic() > deadline:  # stop in time for systemd; the ring has them
                self.skipped += self._queued
                self._queued = 0
                self._backlog.clear()

    def tick(self) -> None:
        try:
            self.pipeline.flush()
            if self.ring is not None:
                self.ring.tick()
            if self.sync_baseline:
                self._merge_baseline()
        except (StoreError, SQLAlchemyError) as exc:  # a busy or failing database must not
            self.store_errors += 1  # stop capture; the next tick tries again
            if self.store_errors == 1 or self.store_errors % 100 == 0:
                log.error("worker %d: store write failed (%d so far): %s", self.worker,
                          self.store_errors, exc)  # fmt: skip
        self.send(("stats", self.worker, self.counters()))

    def finish(self) -> None:
        if self.ring is not None:
            self.ring.close()
        self.pipeline.flush()
        self.send(("done", self.worker, self.counters()))

    def counters(self) -> dict[str, Any]:
        st = self.pipeline.stats
        return {
            "pid": os.getpid(),
            "sources": [src.stats().as_dict() for src in self.sources],
            "ring": self.ring.stats.as_dict() if self.ring is not None else None,
            "pipeline": {
                "packets": st.packets,
                "bytes": st.bytes,
                "malformed": st.malformed,
                "detections": st.detections,
                "engine_errors": st.engine_errors,
                "flows": len(self.pipeline.flows),
                "flows_evicted": self.pipeline.flows.evicted,
                "backlog": self._queued,
                "not_analysed": self.skipped,
                "store_errors": self.store_errors,
            },
            "learning_remaining_s": self.pipeline.ctx.learning.remaining_ns / 1e9,
            "ts_ns": time.time_ns(),
        }

    def _merge_baseline(self) -> None:
        """Learn what the other workers learned (each sees only its share of the flows)."""
        with self.pipeline.store.session() as session:
            rows = session.execute(
                sql_select(BaselineFact.id, BaselineFact.kind, BaselineFact.key)
                .where(BaselineFact.id > self._baseline_seen)
                .order_by(BaselineFact.id)
            ).all()
        baseline = self.pipeline.ctx.baseline
        for row_id, kind, key in rows:
            baseline.merge(kind, key)
            self._baseline_seen = row_id


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs (pickled to it by ``multiprocessing``)."""

    index: int
    workers: int
    data_dir: str
    capture: CaptureConfig
    ring: RingConfig | None
    learning_period_ns: int | None = None
    max_flows: int = DEFAULT_MAX_FLOWS
    ot_subnets: tuple[str, ...] = ()
    settings: dict | None = None
    max_backlog: int = MAX_BACKLOG
    engines: tuple[str, ...] | None = None
    """Engine names to run, in registry order (None: every engine)."""


def serve(loop: CaptureLoop, stopping: Callable[[], bool]) -> None:
    """Run the capture loop of a worker process, its start-up objects frozen out of the
    collector's sight and young garbage collected rarely (``otwatch.gctune``)."""
    tune_for_daemon()
    loop.run(stopping)


def worker_main(spec: WorkerSpec, queue: Any, stop_event: Any) -> None:
    """Entry point of a worker process."""
    stop = {"flag": False}
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: where is it?
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    parent = os.getppid()

    def send(message: tuple) -> None:
        queue.put(message)

    def stopping() -> bool:
        return stop["flag"] or stop_event.is_set() or os.getppid() != parent

    sources: list[CaptureSource] = []
    try:
        store = open_store(spec.data_dir, migrate_schema=False)
        for interface in spec.capture.interfaces:
            sources.append(open_source(interface, spec.capture))
        ring = RingWriter(store, spec.ring, f"w{spec.index}") if spec.ring is not None else None
        manager = ForwardingManager(store, load_catalog(), send, spec.index)
        engines = ENGINES
        if spec.engines is not None:
            engines = tuple(engine for engine in ENGINES if engine.name in spec.engines)
        pipeline = Pipeline(
            manager,
            learning_period_ns=spec.learning_period_ns,
            ot_subnets=spec.ot_subnets,
            settings=spec.settings,
            engines=engines,
            max_flows=spec.max_flows,
        )
        loop = CaptureLoop(
            sources,
            pipeline,
            ring,
            send=send,
            worker=spec.index,
            sync_baseline=spec.workers > 1,
            max_backlog=spec.max_backlog,
        )
        if spec.workers > 1:
            loop._merge_baseline()
        send(("ready", spec.index, {"pid": os.getpid(), "capture": asdict(spec.capture)}))
        serve(loop, stopping)
    except OtwatchError as exc:
        send(("error", spec.index, str(exc)))
    except Exception as exc:  # report, then die: the parent stops the agent
        send(("error", spec.index, f"worker {spec.index} failed: {exc!r}"))
        traceback.print_exc()
    finally:
        for src in sources:
            src.close()
