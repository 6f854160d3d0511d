"""What both daemons (the sensor's sync daemon and central's MQTT service) run on: one
database thread (``Worker``), reconnect delays (``Backoff``), publishing a group of messages
(``publish_all``) and a connection's tasks supervised as one session (``supervise``)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from otwatch.sync.protocol.outgoing import Outgoing
from otwatch.sync.transport import Connection, SyncTransportError

__all__ = ["Backoff", "Worker", "publish_all", "supervise"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Backoff:
    """Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
    Jitter"): the n-th delay (n from 0) is drawn from ``uniform(0, min(cap, base * 2**n))``.
    Spreading retries over the whole window is what keeps a fleet of sensors that lost the
    broker together from reconnecting together; ``reset()`` after a success."""

    base_s: float = 0.5
    cap_s: float = 10.0
    attempt: int = 0
    rng: random.Random = random.Random()  # noqa: RUF009 - shared RNG is fine

    def next(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return self.rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


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


async def supervise(tasks: list[asyncio.Task[Any]], stop: asyncio.Event, what: str) -> None:
    """Wait until one of a connection's ``tasks`` ends or ``stop`` is set, then cancel them
    all. A task's ``SyncTransportError`` is raised as is; any other failure is logged and
    raised as a ``SyncTransportError`` ("<what> failed"), so the caller reconnects."""
    stopper = asyncio.ensure_future(stop.wait())
    try:
        finished, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in [*tasks, stopper]:
            task.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
    for task in finished:
        if task is stopper or task.exception() is None:
            continue
        exc = task.exception()
        if isinstance(exc, SyncTransportError):
            raise exc
        log.error("%s failed", what, exc_info=exc)
        raise SyncTransportError(f"{what} failed: {exc!r}") from exc
