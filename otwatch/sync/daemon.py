"""The sensor's sync daemon: connects, reconnects and pumps ``SensorSync``.

One connection at a time; on every (re)connect the sensor publishes its birth and retained
online status (the last will says offline). Database work runs on one worker thread, so the
event loop keeps answering the broker while SQLite waits for a lock. Reconnects back off
exponentially with full jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from otwatch.sync.engine import Outgoing, SensorSync
from otwatch.sync.protocol.topics import sensor_subscription
from otwatch.sync.tasks import spawn
from otwatch.sync.transport import BrokerConfig, Connection, SyncTransportError, Will

__all__ = ["Backoff", "DaemonOptions", "Worker", "publish_all", "run_sensor_daemon"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Backoff:
    """Exponential backoff with full jitter: ``uniform(0, min(cap, base * 2**n))``."""

    base_s: float = 0.5
    cap_s: float = 30.0
    attempt: int = 0
    rng: random.Random = random.Random()  # noqa: RUF009 - shared RNG is fine

    def next(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return self.rng.uniform(ceiling / 4, ceiling)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(frozen=True)
class DaemonOptions:
    poll_interval_s: float = 0.05
    pipeline: int = 3
    status_interval_s: float = 30.0
    prune_interval_s: float = 3600.0


class Worker:
    """Runs blocking (database) calls on one thread, in submission order."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


async def publish_all(
    conn: Connection,
    messages: Sequence[Outgoing],
    on_done: Callable[[Outgoing], Awaitable[None]] | None = None,
) -> None:
    """Publish in order with QoS 1, all in flight at once; raises on the first failure."""
    if not messages:
        return
    results = await asyncio.gather(
        *(conn.publish(m.topic, m.payload, retain=m.retain) for m in messages),
        return_exceptions=True,
    )
    failure = None
    for message, result in zip(messages, results, strict=True):
        if isinstance(result, BaseException):
            failure = failure or result
        elif on_done is not None:
            await on_done(message)
    if failure is not None:
        raise failure


async def run_sensor_daemon(
    engine: SensorSync,
    broker: BrokerConfig,
    *,
    stop: asyncio.Event,
    options: DaemonOptions | None = None,
    backoff: Backoff | None = None,
) -> None:
    """Run until ``stop`` is set: connect, sync, and reconnect after any connection loss."""
    options = options or DaemonOptions()
    backoff = backoff or Backoff()
    worker = Worker("otwatch-sync-db")
    client_id = f"otwatch-sensor-{engine.sensor_id}"
    try:
        while not stop.is_set():
            will = engine.will()
            try:
                async with Connection(
                    broker, client_id, will=Will(will.topic, will.payload)
                ) as conn:
                    log.info("connected to %s:%d", broker.host, broker.port)
                    await _session(engine, conn, worker, stop, options, backoff)
            except SyncTransportError as exc:
                log.warning("%s", exc)
            await worker.run(engine.on_disconnect)
            if stop.is_set():
                break
            delay = backoff.next()
            log.info("reconnecting in %.1f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
    finally:
        worker.close()


async def _session(
    engine: SensorSync,
    conn: Connection,
    worker: Worker,
    stop: asyncio.Event,
    options: DaemonOptions,
    backoff: Backoff,
) -> None:
    await conn.subscribe(sensor_subscription(engine.sensor_id))
    await publish_all(conn, await worker.run(engine.on_connect, time.time_ns()))
    backoff.reset()
    wake = asyncio.Event()

    async def done(message: Outgoing) -> None:
        if message.rows:
            await worker.run(engine.published, message, time.time_ns())

    async def receive() -> None:
        async for inbound in conn.messages():
            out = await worker.run(
                engine.on_message, inbound.topic, inbound.payload, time.time_ns()
            )
            await publish_all(conn, out)
            wake.set()

    async def send(batches: list[Outgoing]) -> None:
        try:
            await publish_all(conn, batches, done)
        except SyncTransportError:
            for message in batches:
                await worker.run(engine.publish_failed, message)
            raise

    async def pump() -> None:
        """Read the next rows while the previous ones are still on their way (at most
        ``options.pipeline`` groups in flight)."""
        last_status = last_prune = time.monotonic()
        sending: set[asyncio.Task[None]] = set()
        while True:
            batches = await worker.run(engine.poll, time.time_ns())
            if batches:
                sending.add(spawn(send(batches), name="sync-send"))
            while len(sending) >= (options.pipeline if batches else 1):
                finished, sending = await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    task.result()  # re-raise a transport error: the session ends
            now = time.monotonic()
            if now - last_status >= options.status_interval_s:
                last_status = now
                await publish_all(conn, [await worker.run(engine.status, time.time_ns())])
            if now - last_prune >= options.prune_interval_s:
                last_prune = now
                await worker.run(engine.commands.prune, time.time_ns())
            if not batches:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=options.poll_interval_s)

    tasks = [spawn(receive(), name="sync-receive"), spawn(pump(), name="sync-pump")]
    stopper = spawn(stop.wait(), name="sync-stop")
    try:
        finished, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in [*tasks, stopper]:
            task.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
    for task in finished:
        if task is not stopper and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, SyncTransportError):
                raise exc
            raise SyncTransportError(f"sync session failed: {exc!r}") from exc
    if stop.is_set():
        # Clean shutdown: say offline ourselves (a clean disconnect suppresses the will).
        with contextlib.suppress(SyncTransportError):
            await publish_all(conn, [engine.will()])
