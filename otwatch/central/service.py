"""Run central's MQTT side: connect, ingest sensor messages, send commands, reconnect.

``CentralService`` pumps ``CentralSync`` (event batches validated on a decode thread as they
arrive, then everything queued meanwhile handled as one group on the database thread, and
the search index caught up when ingest is idle) and offers
``issue_command`` to in-process callers (the HTTP API): the command is stored pending and
published at once when connected, otherwise on the next connect.

Under systemd (``Type=notify``) ``run`` reports READY after the first connection attempt
(connected or retrying, the reason in STATUS), a STATUS line with the sensor counts every
10 s, WATCHDOG pings while the database thread answers, and STOPPING when asked to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from otwatch.central.commands import CommandSpec, IssueResult
from otwatch.central.health import central_health, central_sensor_rows
from otwatch.central.inbound import Received
from otwatch.central.ingest import CentralSync
from otwatch.central.store import search_backlog
from otwatch.sdnotify import Notifier, heartbeat
from otwatch.sync.protocol.outgoing import Outgoing
from otwatch.sync.protocol.topics import PREFIX, central_subscription
from otwatch.sync.supervision import Backoff, Worker, publish_all, supervise
from otwatch.sync.tasks import spawn
from otwatch.sync.transport import BrokerConfig, Connection, SyncTransportError

__all__ = ["CentralService"]

log = logging.getLogger(__name__)

GROUP_MESSAGES = 32
"""Inbound messages queued for the database thread, at most; also the most in one group."""
GROUP_BYTES = 8 << 20
"""A group stops growing at this many payload bytes (an event batch is ≤ 1 MiB)."""
IDLE_S = 0.2
"""No message for this long: ingest is idle, the search index catches up a step."""


class CentralService:
    def __init__(
        self,
        sync: CentralSync,
        broker: BrokerConfig,
        *,
        client_id: str = "otwatch-central",
        share_group: str | None = None,
        poll_interval_s: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.sync = sync
        self.broker = broker
        self.client_id = client_id
        self.share_group = share_group
        self.poll_interval_s = poll_interval_s
        self.backoff = backoff or Backoff()
        self.worker = Worker("otwatch-central-db")
        self.decoder = Worker("otwatch-central-decode")
        """Validates event batches ahead (``CentralSync.predecode``): pydantic runs here while
        the database thread is inside SQLite, which lets go of the GIL."""
        self.connected = asyncio.Event()
        self._conn: Connection | None = None
        self.last_error: str | None = None

    async def issue_command(self, sensor_id: str, kind: str, **kwargs: Any) -> IssueResult:
        """Queue a command (see ``CentralSync.issue_command``) and publish it if connected."""
        result = await self.worker.run(lambda: self.sync.issue_command(sensor_id, kind, **kwargs))
        await self._send(result.outgoing)
        return result

    async def issue(self, sensor_id: str, spec: CommandSpec, *, actor: str) -> IssueResult:
        """Queue a command spec (``otwatch.central.commands``) and publish it if connected."""
        result = await self.worker.run(lambda: self.sync.issue(sensor_id, spec, actor=actor))
        await self._send(result.outgoing)
        return result

    async def _send(self, messages: tuple[Outgoing, ...] | list[Outgoing]) -> None:
        conn = self._conn
        if conn is None or not messages:
            return
        try:
            await publish_all(conn, messages)
        except SyncTransportError as exc:
            log.info("not sent now (pending until the next connect): %s", exc)

    async def status_line(self) -> str:
        """One line for systemd's STATUS: broker link and sensors online."""

        def figures() -> dict[str, Any]:
            with self.sync.store.session() as session:
                return central_health(central_sensor_rows(session))

        health = await self.worker.run(figures)
        link = "connected to" if self.connected.is_set() else "waiting for"
        text = (
            f"{link} {self.broker.host}:{self.broker.port}; {len(health['sensors'])} sensor(s): "
            f"{health['online']} online, {health['silent']} silent, {health['offline']} offline"
        )
        return text + (f"; {self.last_error[:120]}" if self.last_error else "")

    async def run(self, stop: asyncio.Event) -> None:
        notifier = Notifier()

        async def probe() -> None:
            await self.worker.run(lambda: None)

        beat = spawn(heartbeat(notifier, stop, self.status_line, probe=probe), name="central-beat")
        try:
            while not stop.is_set():
                try:
                    async with Connection(self.broker, self.client_id) as conn:
                        log.info("connected to %s:%d", self.broker.host, self.broker.port)
                        self.last_error = None
                        await self._session(conn, stop, notifier)
                except SyncTransportError as exc:
                    log.warning("%s", exc)
                    self.last_error = str(exc)
                finally:
                    self._conn = None
                    self.connected.clear()
                if stop.is_set():
                    break
                notifier.ready(await self.status_line())  # READY once, then STATUS updates
                delay = self.backoff.next()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
            notifier.stopping("stopping")
        finally:
            stop.set()
            await asyncio.gather(beat, return_exceptions=True)
            notifier.close()
            self.worker.close()
            self.decoder.close()

    async def _session(
        self, conn: Connection, stop: asyncio.Event, notifier: Notifier | None = None
    ) -> None:
        await conn.subscribe(central_subscription(self.share_group))
        if self.share_group:
            # A shared subscription deals one PCAP's chunks out to every instance: each
            # instance also takes them all directly (see otwatch.central.node).
            await conn.subscribe(f"{PREFIX}/+/up/pcap/#")
        self._conn = conn
        await publish_all(conn, await self.worker.run(self.sync.on_connect, time.time_ns()))
        self.backoff.reset()
        self.connected.set()
        if notifier is not None:
            notifier.ready(await self.status_line())

        inbox: asyncio.Queue[Received] = asyncio.Queue(maxsize=GROUP_MESSAGES)
        predecode = self.sync.predecode

        async def receive() -> None:
            async for inbound in conn.messages():
                topic, payload = inbound.topic, inbound.payload
                await inbox.put((topic, payload, await self.decoder.run(predecode, topic, payload)))

        replies: set[asyncio.Task[None]] = set()

        async def ingest() -> None:
            backlog = True
            getter: asyncio.Future[Received] | None = None
            try:
                while True:
                    getter = getter or asyncio.ensure_future(inbox.get())
                    await asyncio.wait([getter], timeout=IDLE_S if backlog else None)
                    if not getter.done():  # idle: index a step of the alerts written meanwhile
                        backlog = await self.worker.run(self.sync.index_search) > 0
                        continue
                    group, getter, backlog = [getter.result()], None, True
                    await handle(group)
            finally:
                if getter is not None:
                    getter.cancel()

        async def handle(group: list[Received]) -> None:
            size = len(group[0][1])
            while not inbox.empty() and size < GROUP_BYTES:
                group.append(inbox.get_nowait())
                size += len(group[-1][1])
            # Messages that arrived while the previous group was written go in one
            # transaction (group commit); acks go out while the next group is written.
            out = await self.worker.run(self.sync.on_messages, group, time.time_ns())
            if out:
                replies.add(spawn(publish_all(conn, out), name="central-reply"))
            for task in [t for t in replies if t.done()]:
                replies.discard(task)
                task.result()

        async def timers() -> None:
            while True:
                await asyncio.sleep(self.poll_interval_s)
                await publish_all(conn, await self.worker.run(self.sync.poll, time.time_ns()))
                # a step a second while ingest is busy and the backlog is large
                await self.worker.run(
                    lambda: self.sync.index_search(keep=search_backlog.MAX_BACKLOG)
                )

        tasks = [
            spawn(receive(), name="central-receive"),
            spawn(ingest(), name="central-ingest"),
            spawn(timers(), name="central-timers"),
        ]
        await supervise(tasks, stop, "central session")
