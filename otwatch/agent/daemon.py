"""The live agent: capture workers, one collector, clean shutdown, systemd heartbeats.

The parent process is the collector. It repairs the ring, starts ``workers`` capture
processes (``spawn``; each opens its own sockets and store connection), and then only
handles their messages: detection batches go to the one AlertManager (de-duplication across
workers happens here), counters are summed into the ``capture_status`` state that
``otwatch pcap status`` shows, and alerts created or updated at each flush get their evidence
window scheduled. Evidence is cut from the ring by a separate low-priority process, so
neither the workers' hot path nor the collector's once-a-second flush waits for it.

SIGTERM/SIGINT: the workers stop reading, drain what the kernel already accepted, close
their ring segments and send their last detections; the collector writes them, then exits.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue as queue_mod
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from otwatch.agent.alerts import build
from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.alerts.ratelimit import DEFAULT_RATE_LIMIT, RateLimit
from otwatch.agent.capture.config import CaptureConfig, EvidenceConfig, RingConfig
from otwatch.agent.capture.evidence import Evidence
from otwatch.agent.capture.ring import ring_budget
from otwatch.agent.capture.ring_repair import repair_ring
from otwatch.agent.capture.source import CaptureError
from otwatch.agent.capture.status import CAPTURE_STATE, format_bytes
from otwatch.agent.decode.flows import DEFAULT_MAX_FLOWS
from otwatch.agent.evidence_process import EvidenceProcess
from otwatch.agent.sensor import resolve_identity
from otwatch.agent.store.baseline import load_learning_ns, save_learning_ns
from otwatch.agent.store.db import Store, StoreError, open_store
from otwatch.agent.store.state import put_state
from otwatch.agent.worker import MAX_BACKLOG, WorkerSpec, worker_main
from otwatch.sdnotify import Notifier, watchdog_interval_s

__all__ = ["Collector", "DaemonOptions", "run_daemon"]

log = logging.getLogger("otwatch.agent")
T = TypeVar("T")

FLUSH_S = 1.0
STATUS_S = 1.0
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
STALL_S = 30.0
"""A worker that has sent nothing for this long is considered hung (no watchdog ping)."""


class Stoppable(Protocol):
    def stop(self) -> None: ...


ServeMetrics = Callable[[Store], Stoppable | None]
"""Starts the metrics endpoint over the daemon's store; the CLI passes one built from
``otwatch.metrics`` (the agent does not import the layers above it)."""


@dataclass(frozen=True)
class DaemonOptions:
    capture: CaptureConfig
    ring: RingConfig | None
    evidence: EvidenceConfig | None
    workers: int = 1
    learning_period_ns: int | None = None
    sensor_id: str | None = None
    site: str | None = None
    zone: str | None = None
    max_flows: int = DEFAULT_MAX_FLOWS
    ot_subnets: tuple[str, ...] = ()
    max_backlog: int = MAX_BACKLOG
    engines: tuple[str, ...] | None = None
    """Names of the engines to run (None: all of the registry)."""
    settings: dict[str, dict[str, Any]] | None = None
    """Per-engine threshold overrides (the configuration's ``[engines.<name>]`` tables)."""
    alert_rate: RateLimit | None = DEFAULT_RATE_LIMIT
    """Per-type limit on new alerts (the configuration's ``detection.alert_rate_*``; None:
    ``alert_manager``'s default)."""


@dataclass
class _WorkerState:
    ready: bool = False
    done: bool = False
    last_seen: float = field(default_factory=time.monotonic)
    counters: dict[str, Any] = field(default_factory=dict)


class Collector:
    """Handles worker messages: detections → manager, counters → status, evidence windows."""

    def __init__(
        self,
        store: Store,
        manager: AlertManager,
        options: DaemonOptions,
        evidence: Evidence | None,
        *,
        ring_budget_bytes: int | None = None,
    ) -> None:
        self.store = store
        self.manager = manager
        self.options = options
        self.evidence = evidence
        self.ring_budget_bytes = ring_budget_bytes
        self.workers: dict[int, _WorkerState] = {i: _WorkerState() for i in range(options.workers)}
        self.errors: list[str] = []
        self.store_errors = 0
        self.alerts_new = 0
        self.alerts_updated = 0
        self.started_ns = time.time_ns()
        self.state = "starting"

    def handle(self, message: tuple) -> None:
        kind, index, payload = message
        worker = self.workers.setdefault(index, _WorkerState())
        worker.last_seen = time.monotonic()
        if kind == "det":
            observe = self.manager.observe
            for det, count, first_ns, last_ns in payload:
                observe(det._replace(ts_ns=first_ns))
                if count > 1:
                    later = det._replace(ts_ns=last_ns)
                    for _ in range(count - 1):
                        observe(later)
        elif kind == "stats":
            worker.counters = payload
        elif kind == "ready":
            worker.ready = True
        elif kind == "done":
            worker.counters = payload
            worker.done = True
        elif kind == "error":
            self.errors.append(str(payload))

    def flush(self) -> None:
        """Write pending alerts and schedule evidence for those created or updated."""
        self.manager.flush()
        stats = self.manager.stats
        if stats.created or stats.updated:
            ids = stats.created | stats.updated
            self.alerts_new += len(stats.created)
            self.alerts_updated += len(stats.updated - stats.created)
            stats.created.clear()
            stats.updated.clear()
            if self.evidence is not None:
                self.evidence.schedule(ids)

    def status(self) -> dict[str, Any]:
        interfaces: dict[str, dict[str, int]] = {}
        ring: dict[str, Any] = {}
        pipeline: dict[str, int] = {}
        learning = 0.0
        for worker in self.workers.values():
            counters = worker.counters
            for src in counters.get("sources", []):
                agg = interfaces.setdefault(
                    src["interface"], {"received": 0, "kernel_packets": 0, "kernel_drops": 0}
                )
                for key in agg:
                    agg[key] += int(src.get(key, 0))
            for key, value in (counters.get("ring") or {}).items():
                if key == "last_disk_full_ns":
                    if value and value > (ring.get(key) or 0):
                        ring[key] = value
                elif key == "high_water_ns":
                    ring[key] = max(ring.get(key, 0), value or 0)
                else:
                    ring[key] = ring.get(key, 0) + (value or 0)
            for key, value in (counters.get("pipeline") or {}).items():
                pipeline[key] = pipeline.get(key, 0) + value
            learning = max(learning, counters.get("learning_remaining_s", 0.0))
        notes = list(self.errors)
        if pipeline.get("not_analysed"):
            notes.append(
                f"overload: {pipeline['not_analysed']:,} frame(s) recorded in the ring but not "
                "analysed (add --workers or CPU)"
            )
        if ring.get("last_disk_full_ns"):
            notes.append(
                f"disk full {ring.get('disk_full', 0)} time(s): oldest segments evicted, "
                f"{ring.get('dropped', 0)} frame(s) not written to the ring"
            )
        return {
            "state": self.state,
            "pid": os.getpid(),
            "started_ns": self.started_ns,
            "updated_ns": time.time_ns(),
            "workers": self.options.workers,
            "method": self.options.capture.method,
            "configured": list(self.options.capture.interfaces),
            "bpf": self.options.capture.bpf,
            "interfaces": interfaces,
            "ring": {**ring, "enabled": self.options.ring is not None},
            "ring_budget_bytes": self.ring_budget_bytes,
            "evidence": (
                {
                    "before_s": self.options.evidence.before_s,
                    "after_s": self.options.evidence.after_s,
                    "max_bytes": self.options.evidence.max_bytes,
                    "alert_max_bytes": self.options.evidence.alert_max_bytes,
                }
                if self.options.evidence is not None
                else None
            ),
            "pipeline": pipeline,
            "per_worker": [
                {
                    "pid": w.counters.get("pid"),
                    "packets": (w.counters.get("pipeline") or {}).get("packets", 0),
                    "ts_ns": w.counters.get("ts_ns"),
                }
                for _, w in sorted(self.workers.items())
            ],
            "alerts": {"new": self.alerts_new, "updated": self.alerts_updated},
            "learning_remaining_s": learning,
            "notes": notes,
        }

    def save_status(self) -> dict[str, Any]:
        status = self.status()
        now, last = time.monotonic(), getattr(self, "_received", None)
        for name, figures in status["interfaces"].items():  # packets/s since the last save
            if last is not None and now > last[0] and name in last[1]:
                figures["rate_pps"] = round((figures["received"] - last[1][name]) / (now - last[0]))
        self._received = (now, {n: f["received"] for n, f in status["interfaces"].items()})
        with self.store.session() as session:
            put_state(session, CAPTURE_STATE, status)
        return status


def status_line(status: dict[str, Any]) -> str:
    packets = sum(i["received"] for i in status["interfaces"].values())
    drops = sum(i["kernel_drops"] for i in status["interfaces"].values())
    names = ",".join(status["interfaces"] or status.get("configured", ())) or "-"
    text = (
        f"{status['state']} on {names} ({status['workers']} worker(s)): {packets:,} packets, "
        f"{drops:,} kernel drops, {status['alerts']['new']} new alert(s)"
    )
    ring = status.get("ring") or {}
    if ring.get("enabled"):
        text += f", ring {format_bytes(ring.get('bytes', 0))} written"
    if status["notes"]:
        text += "; " + status["notes"][-1]
    return text


def run_daemon(
    data_dir: Path, options: DaemonOptions, serve_metrics: ServeMetrics | None = None
) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    store = open_store(data_dir)
    notifier = Notifier()
    metrics = serve_metrics(store) if serve_metrics is not None else None
    try:
        return _run(store, Path(data_dir), options, notifier)
    finally:
        if metrics is not None:
            metrics.stop()
        notifier.close()
        store.close()


def _run(store: Store, data_dir: Path, options: DaemonOptions, notifier: Notifier) -> int:
    budget = None
    if options.ring is not None:
        Path(options.ring.directory).mkdir(parents=True, exist_ok=True)
        report = repair_ring(store, options.ring.directory)
        if report.repaired or report.indexed or report.removed:
            log.warning(
                "PCAP ring repaired: %d segment(s) closed (%d partial bytes cut), %d indexed, "
                "%d removed",
                report.repaired,
                report.truncated_bytes,
                report.indexed,
                report.removed,
            )
        budget = ring_budget(options.ring)
    with store.session() as session:
        identity = resolve_identity(session, options.sensor_id, options.site, options.zone)
        # Workers update this key at every tick; it must exist before they start, or two
        # of them may both try to insert it.
        learning = options.learning_period_ns
        save_learning_ns(session, load_learning_ns(session) if learning is None else learning)
    manager = build.alert_manager(store, identity, rate_limit=options.alert_rate)
    evidence = (
        Evidence(store, options.evidence)
        if options.evidence is not None and options.ring is not None
        else None
    )
    collector = Collector(store, manager, options, evidence, ring_budget_bytes=budget)

    capture = options.capture
    if options.workers > 1:
        capture = replace(capture, fanout_group=(os.getpid() * 31 + 7) & 0xFFFF)
    ctx = multiprocessing.get_context("spawn")
    messages = ctx.Queue()
    stop_event = ctx.Event()
    procs = []
    for index in range(options.workers):
        spec = WorkerSpec(
            index=index,
            workers=options.workers,
            data_dir=str(data_dir),
            capture=capture,
            ring=options.ring,
            learning_period_ns=None,  # set above, once
            max_flows=options.max_flows,
            ot_subnets=options.ot_subnets,
            max_backlog=options.max_backlog,
            engines=options.engines,
            settings=options.settings,
        )
        proc = ctx.Process(
            target=worker_main, args=(spec, messages, stop_event), name=f"otwatch-w{index}"
        )
        procs.append(proc)

    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            log.info("signal %d: stopping", signum)
        stopping.set()
        stop_event.set()

    old_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    extractor: EvidenceProcess | None = None
    try:
        for proc in procs:
            proc.start()
        if not _wait_ready(collector, messages, procs, stopping):
            stop_event.set()
            _finish(collector, messages, procs)
            message = "; ".join(collector.errors) or "capture workers did not start"
            if stopping.is_set() and not collector.errors:
                collector.state = "stopped"
                collector.save_status()
                return 0
            collector.state = "failed"
            collector.save_status()
            raise CaptureError(message)
        collector.state = "capturing"
        status = collector.save_status()
        log.info("%s", status_line(status))
        notifier.ready(status_line(status))
        if evidence is not None:
            extractor = EvidenceProcess(ctx, data_dir, evidence.config)
            extractor.start()
        code = _main_loop(collector, messages, procs, stopping, notifier, extractor)
        stop_event.set()
        collector.state = "stopping"
        notifier.stopping(status_line(collector.status()))
        _finish(collector, messages, procs)
        if extractor is not None:
            extractor.stop()
            extractor = None
        if evidence is not None:  # windows already complete
            try:
                # a pass over a large ring can outlast the stop: cut short, it stays pending
                until = time.monotonic() + 10.0
                evidence.extract_due(deadline=until, stopping=lambda: time.monotonic() >= until)
            except (OSError, StoreError) as exc:
                log.error("evidence extraction failed at stop: %s", exc)
        collector.state = "stopped"
        status = _store_call(collector, collector.save_status) or collector.status()
        log.info("%s", status_line(status))
        if collector.errors:
            for error in collector.errors:
                log.error("%s", error)
            return 1
        return code
    finally:
        stop_event.set()
        if extractor is not None:
            extractor.stop()
        for proc in procs:
            if proc.is_alive():
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


def _wait_ready(
    collector: Collector, messages: Any, procs: list, stopping: threading.Event
) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and not stopping.is_set():
        if collector.errors:
            return False
        if all(w.ready for w in collector.workers.values()):
            return True
        if any(p.exitcode is not None for p in procs):
            _drain_queue(collector, messages)
            if not collector.errors:
                collector.errors.append("a capture worker exited during start-up")
            return False
        _receive(collector, messages, 0.2)
    return False


def _main_loop(
    collector: Collector,
    messages: Any,
    procs: list,
    stopping: threading.Event,
    notifier: Notifier,
    extractor: EvidenceProcess | None,
) -> int:
    next_flush = next_status = time.monotonic()
    watchdog = watchdog_interval_s()
    next_watchdog = time.monotonic()
    while not stopping.is_set():
        _receive(collector, messages, 0.2)
        now = time.monotonic()
        if now >= next_flush:
            _store_call(collector, collector.flush)
            next_flush = now + FLUSH_S
        if collector.errors:
            return 1
        for index, proc in enumerate(procs):
            if proc.exitcode is not None:
                collector.errors.append(
                    f"capture worker {index} exited unexpectedly (code {proc.exitcode})"
                )
                return 1
        if extractor is not None and extractor.failed and extractor.failed not in collector.errors:
            collector.errors.append(extractor.failed)
        if now >= next_status:
            status = _store_call(collector, collector.save_status) or collector.status()
            notifier.status(status_line(status))
            next_status = now + STATUS_S
        if watchdog is not None and now >= next_watchdog:
            stalled = [i for i, w in collector.workers.items() if now - w.last_seen > STALL_S]
            if not stalled:
                notifier.watchdog()
            next_watchdog = now + watchdog
    return 0


def _store_call(collector: Collector, fn: Callable[[], T]) -> T | None:
    """A periodic database write; a failing database (disk full, locked) must not stop
    capture: log, count and try again next time (pending alerts stay pending)."""
    try:
        return fn()
    except StoreError as exc:
        collector.store_errors += 1
        if collector.store_errors == 1 or collector.store_errors % 100 == 0:
            log.error("store write failed (%d so far), retrying: %s", collector.store_errors, exc)
        return None


def _receive(collector: Collector, messages: Any, timeout: float) -> bool:
    try:
        message = messages.get(timeout=timeout)
    except queue_mod.Empty:
        return False
    collector.handle(message)
    return True


def _drain_queue(collector: Collector, messages: Any) -> None:
    while _receive(collector, messages, 0.05):
        pass


def _finish(collector: Collector, messages: Any, procs: list) -> None:
    """Collect the workers' last messages until each says done (or exits), then flush."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        pending = [
            i for i, proc in enumerate(procs) if not collector.workers[i].done and proc.is_alive()
        ]
        if not pending:
            break
        _receive(collector, messages, 0.2)
    _drain_queue(collector, messages)
    collector.flush()
