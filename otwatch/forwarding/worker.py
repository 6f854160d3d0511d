"""The delivery worker: one asyncio task per enabled target.

Each task reads the rule's events after the target's cursor, sends them in order, and
moves the cursor (with the sent counter) only after the target took them: at least once,
in order per target. A failure is counted and retried with capped exponential backoff and
jitter. While a target keeps failing and more than ``max_queue`` changes wait, the oldest
are skipped: the events among them that the rule would have sent are counted as dropped
and logged. Rules are re-read every ``reload_s``; a changed rule or target restarts its task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from otwatch.forwarding.backend import Backend
from otwatch.forwarding.repository import (
    TargetRow,
    enabled_targets,
    save_failure,
    save_progress,
)
from otwatch.forwarding.source import (
    GAP_WAIT_NS,
    Cursor,
    GapGuard,
    ReadResult,
    head,
    read_events,
)
from otwatch.forwarding.targets.base import DeliveryError, Target
from otwatch.forwarding.targets.factory import build_target
from otwatch.sync.supervision import Backoff
from otwatch.sync.tasks import spawn

__all__ = ["Forwarder", "ForwarderOptions", "TargetStats"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForwarderOptions:
    poll_s: float = 0.25
    """How often an idle target looks for new changes."""
    batch: int = 2000
    """Store rows read (and events sent) per step."""
    max_queue: int = 100_000
    """Changes a failing target may fall behind before the oldest are dropped."""
    reload_s: float = 2.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    gap_wait_s: float = GAP_WAIT_NS / 1e9
    """PostgreSQL: how long rows past an id gap wait for it to be filled (``source``)."""


@dataclass
class TargetStats:
    """Counters of this process (the store keeps the totals)."""

    label: str
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    queue: int = 0
    last_error: str | None = None


@dataclass
class _Running:
    row: TargetRow
    task: asyncio.Task[None]
    stats: TargetStats
    halt: asyncio.Event


STOP_GRACE_S = 5.0
"""A stopping target finishes the batch in flight (and saves its cursor) within this."""


async def _pause(halt: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(halt.wait(), seconds)


@dataclass
class Forwarder:
    backend: Backend
    options: ForwarderOptions = field(default_factory=ForwarderOptions)
    running: dict[int, _Running] = field(default_factory=dict)

    def stats(self) -> list[TargetStats]:
        return [r.stats for r in self.running.values()]

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.reload()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.options.reload_s)
        finally:
            await self.stop_all()

    async def reload(self) -> None:
        try:
            rows = await asyncio.to_thread(self._load)
        except Exception as exc:  # the store is busy or gone: keep what runs, try again
            log.warning("forwarding: cannot read rules: %s", exc)
            return
        wanted = {row.target_id: row for row in rows}
        for target_id, current in list(self.running.items()):
            row = wanted.get(target_id)
            if row is None or row.version != current.row.version or current.task.done():
                await self._stop(target_id)
        for target_id, row in wanted.items():
            if target_id not in self.running:
                self._start(row)

    def _load(self) -> list[TargetRow]:
        with self.backend.store.session() as session:
            return enabled_targets(session, self.backend)

    def _start(self, row: TargetRow) -> None:
        try:
            target = build_target(row.spec)
        except DeliveryError as exc:
            log.error("forwarding rule %r: %s", row.rule_name, exc)
            return
        stats = TargetStats(target.label)
        halt = asyncio.Event()
        task = spawn(self._deliver(row, target, stats, halt), name=f"fwd-{row.target_id}")
        self.running[row.target_id] = _Running(row, task, stats, halt)
        log.info("forwarding rule %r → %s", row.rule_name, target.label)

    async def _stop(self, target_id: int) -> None:
        running = self.running.pop(target_id)
        running.halt.set()
        done, _ = await asyncio.wait([running.task], timeout=STOP_GRACE_S)
        if not done:
            running.task.cancel()
        await asyncio.gather(running.task, return_exceptions=True)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self._stop(target_id) for target_id in list(self.running)))

    async def _deliver(
        self, row: TargetRow, target: Target, stats: TargetStats, halt: asyncio.Event
    ) -> None:
        opts = self.options
        backoff = Backoff(base_s=opts.backoff_base_s, cap_s=opts.backoff_cap_s)
        guard = GapGuard(self.backend.postgres, int(opts.gap_wait_s * 1e9))
        cursor = row.cursor
        instance = await asyncio.to_thread(self._instance)
        failing = False
        ahead: asyncio.Future[ReadResult] | None = None
        """The next batch, read while this one is sent (valid only if this one goes)."""

        def read(start: Cursor) -> asyncio.Future[ReadResult]:
            now = time.time_ns()
            return asyncio.ensure_future(
                asyncio.to_thread(self._read, row, start, instance, guard, now, target.detail)
            )

        try:
            while not halt.is_set():
                if failing:
                    cursor = await asyncio.to_thread(self._drop_overflow, row, cursor, stats)
                result = await (ahead or read(cursor))
                ahead = None
                if not result.events:
                    if result.cursor != cursor:
                        cursor = result.cursor
                        await asyncio.to_thread(self._save, row, cursor, 0, 0)
                    if result.rows < opts.batch:
                        await _pause(halt, opts.poll_s)
                    continue
                if result.rows >= opts.batch:
                    ahead = read(result.cursor)
                progress = [cursor]
                try:
                    await self._send(row, target, result, stats, progress)
                except DeliveryError as exc:
                    if ahead is not None:
                        await asyncio.gather(ahead, return_exceptions=True)
                        ahead = None
                    cursor = progress[0]
                    failing = True
                    stats.failed += 1
                    stats.last_error = str(exc)
                    log.warning("forwarding rule %r: %s", row.rule_name, exc)
                    await asyncio.to_thread(self._failed, row, str(exc))
                    await _pause(halt, backoff.next())
                    continue
                cursor = progress[0]
                failing = False
                backoff.reset()
                stats.last_error = None
        finally:
            if ahead is not None:
                await asyncio.gather(ahead, return_exceptions=True)
            await target.close()

    async def _send(
        self,
        row: TargetRow,
        target: Target,
        result: ReadResult,
        stats: TargetStats,
        progress: list[Cursor],
    ) -> None:
        """Send in the target's chunks, saving the cursor after each (``progress[0]``): a
        crash re-sends at most the chunk in flight; a failure raises after what went."""
        events, size = result.events, target.chunk
        for start in range(0, len(events), size):
            chunk = events[start : start + size]
            await target.send(chunk)
            last = start + size >= len(events)
            cursor = result.cursor if last else chunk[-1].pos
            await asyncio.to_thread(self._save, row, cursor, len(chunk), 0)
            progress[0] = cursor
            stats.sent += len(chunk)

    def _instance(self) -> str:
        with self.backend.store.session() as session:
            return self.backend.instance(session)

    def _read(
        self,
        row: TargetRow,
        cursor: Cursor,
        instance: str,
        guard: GapGuard,
        now: int,
        detail: bool,
    ) -> ReadResult:
        with self.backend.store.session() as session:
            return read_events(
                session,
                self.backend,
                row.rule,
                cursor,
                instance,
                self.options.batch,
                guard,
                now,
                detail,
            )

    def _save(self, row: TargetRow, cursor: Cursor, sent: int, dropped: int) -> None:
        with self.backend.store.session() as session:
            save_progress(
                session, self.backend, row.target_id, cursor, sent, dropped, time.time_ns()
            )

    def _failed(self, row: TargetRow, error: str) -> None:
        with self.backend.store.session() as session:
            save_failure(session, self.backend, row.target_id, error, time.time_ns())

    def _drop_overflow(self, row: TargetRow, cursor: Cursor, stats: TargetStats) -> Cursor:
        """Skip the oldest changes past ``max_queue``; count the rule's events among them."""
        limit = self.options.max_queue
        central = self.backend.central
        with self.backend.store.session() as session:
            top = head(session, self.backend)
            instance = self.backend.instance(session)
        lag = (top[0] - cursor[0]) + ((top[1] - cursor[1]) if central else 0)
        stats.queue = max(0, lag)
        if lag <= limit:
            return cursor
        # Keep the newest ``limit`` of each feed; never move a cursor back.
        goal = (
            max(cursor[0], top[0] - limit),
            max(cursor[1], top[1] - limit) if central else cursor[1],
        )
        dropped, start, guard = 0, cursor, GapGuard()
        while cursor != goal:
            with self.backend.store.session() as session:
                result = read_events(
                    session,
                    self.backend,
                    row.rule,
                    cursor,
                    instance,
                    self.options.batch,
                    guard,
                    time.time_ns(),
                    detail=False,
                )
            dropped += sum(1 for e in result.events if e.pos[0] <= goal[0] and e.pos[1] <= goal[1])
            reached = (min(result.cursor[0], goal[0]), min(result.cursor[1], goal[1]))
            cursor = goal if result.rows == 0 or reached == cursor else reached
        with self.backend.store.session() as session:
            save_progress(session, self.backend, row.target_id, cursor, 0, dropped, time.time_ns())
        stats.dropped += dropped
        log.warning(
            "forwarding rule %r → %s: target down, %d changes waiting (limit %d): skipped "
            "from %s to %s, dropping %d of its events",
            row.rule_name,
            stats.label,
            lag,
            limit,
            start,
            goal,
            dropped,
        )
        return cursor
