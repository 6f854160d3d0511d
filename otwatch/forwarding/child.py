"""Central's forwarding in a child process at lower CPU priority.

In ``otwatch central run``'s own process the forwarder shared the interpreter (one GIL) and
its CPU with ingest: two rules roughly doubled central's CPU per ingested event and cut
ingest throughput by 40% in ``bench/sync.py --forwarding``. As a child
(``otwatch forwarding run --db``, the same worker a sensor runs) at ``nice`` +10 it can use
the other core, and where CPU is short ingest goes first while forwarding catches up
after the burst (bounded by the drop policy, ``max_queue``). Delivery semantics are the
worker's own: at least once, in order per target, cursor in the database.

The child gets the database URL in ``OTWATCH_CENTRAL_DB`` (not on its command line), stops
with SIGTERM when central stops, stops by itself when central goes away (``--parent-pid``),
and is started again with capped backoff if it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from otwatch.sync.supervision import Backoff

__all__ = ["NICE", "run_forwarding_child", "watch_parent"]

log = logging.getLogger(__name__)

NICE = 10
"""How much lower the child's CPU priority is than central's."""
STOP_S = 10.0
"""A stopping child finishes the chunk in flight (and saves its cursor) within this."""


def _command(log_level: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "otwatch.cli",
        "--log-level",
        log_level,
        "forwarding",
        "run",
        "--parent-pid",
        str(os.getpid()),
    ]


async def run_forwarding_child(db_url: str, stop: asyncio.Event, *, nice: int = NICE) -> None:
    """Keep one forwarding child running until ``stop``."""
    backoff = Backoff(base_s=1.0, cap_s=60.0)
    level = logging.getLevelName(logging.getLogger("otwatch").getEffectiveLevel()).lower()
    env = {**os.environ, "OTWATCH_CENTRAL_DB": db_url}
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        proc = await asyncio.create_subprocess_exec(
            *_command(level),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
        )
        started = loop.time()
        log.info("forwarding process %d started (nice +%d)", proc.pid, nice)
        stopping = asyncio.ensure_future(stop.wait())
        exited = asyncio.ensure_future(proc.wait())
        await asyncio.wait([stopping, exited], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            await _end(proc, exited)
            stopping.cancel()
            return
        stopping.cancel()
        if loop.time() - started > 60:
            backoff.reset()
        delay = backoff.next()
        log.warning(
            "forwarding process %d exited with %s; starting it again in %.0f s",
            proc.pid,
            proc.returncode,
            delay,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


async def _end(proc: asyncio.subprocess.Process, exited: asyncio.Future[int]) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(exited), STOP_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await exited


async def watch_parent(parent: int, stop: asyncio.Event, interval_s: float = 1.0) -> None:
    """Set ``stop`` once ``parent`` is no longer this process's parent (central is gone,
    even by ``kill -9``): no forwarder outlives the central that started it."""
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("central (pid %d) is gone: forwarding stops", parent)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
