"""The sensor's sync daemon: connects, reconnects and pumps ``SensorSync``.

One connection at a time; on every (re)connect the sensor publishes its birth and retained
online status (the last will says offline). Database work runs on one worker thread, so the
event loop keeps answering the broker while SQLite waits for a lock. Reconnects back off
exponentially, with full jitter (``supervision.Backoff``).

Health: the connection state and central's last acknowledgement are saved in
``sensor_state`` (``otwatch.sync.tracker.SyncTracker``; ``otwatch status`` and the metrics
read them). Under systemd (``Type=notify``) the daemon reports READY after its first
connection attempt (connected, or retrying with the reason in STATUS, so that a broker outage
does not hold the unit in "activating"), a one-line STATUS every 10 s, WATCHDOG pings while
its database thread answers, and STOPPING on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from otwatch.sdnotify import Notifier, heartbeat
from otwatch.sync.protocol.topics import sensor_subscription
from otwatch.sync.sensor_sync import Outgoing, SensorSync
from otwatch.sync.supervision import Backoff, Worker, publish_all, supervise
from otwatch.sync.tasks import spawn
from otwatch.sync.tracker import SyncTracker
from otwatch.sync.transport import BrokerConfig, Connection, SyncTransportError, Will

__all__ = ["DaemonOptions", "run_sensor_daemon"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaemonOptions:
    poll_interval_s: float = 0.05
    pipeline: int = 3
    status_interval_s: float = 30.0
    prune_interval_s: float = 3600.0
    state_interval_s: float = 5.0
    """At most this often the connection state is saved while acks move it forward."""


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
    tracker = await worker.run(
        SyncTracker.resume, engine.store, f"{broker.host}:{broker.port}", engine.stream.acked_hw
    )
    notifier = Notifier()
    await worker.run(tracker.save, engine.store)

    async def status_line() -> str:
        depth = await worker.run(lambda: engine.health()["outbox_depth"])
        return tracker.line(depth)

    async def probe() -> None:
        await worker.run(lambda: None)

    beat = spawn(heartbeat(notifier, stop, status_line, probe=probe), name="sync-heartbeat")
    try:
        while not stop.is_set():
            will = engine.will()
            error = None
            try:
                async with Connection(
                    broker, client_id, will=Will(will.topic, will.payload)
                ) as conn:
                    log.info("connected to %s:%d", broker.host, broker.port)
                    tracker.connected(time.time_ns())
                    await worker.run(tracker.save, engine.store)
                    notifier.ready(await status_line())
                    await _session(engine, conn, worker, stop, options, backoff, tracker)
            except SyncTransportError as exc:
                log.warning("%s", exc)
                error = str(exc)
            await worker.run(engine.on_disconnect)
            tracker.disconnected(time.time_ns(), error)
            if stop.is_set():
                break
            await worker.run(tracker.save, engine.store)
            notifier.ready(await status_line())  # READY once; later calls refresh STATUS
            delay = backoff.next()
            log.info("reconnecting in %.1f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        notifier.stopping("stopping: saving state")
        tracker.state = "stopped"
        await worker.run(tracker.save, engine.store)
    finally:
        stop.set()
        await asyncio.gather(beat, return_exceptions=True)
        notifier.close()
        worker.close()


async def _session(
    engine: SensorSync,
    conn: Connection,
    worker: Worker,
    stop: asyncio.Event,
    options: DaemonOptions,
    backoff: Backoff,
    tracker: SyncTracker | None = None,
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
            now = time.time_ns()
            out = await worker.run(engine.on_message, inbound.topic, inbound.payload, now)
            moved = tracker is not None and tracker.acked(engine.stream.acked_hw, now)
            if (
                moved
                and tracker is not None
                and now - tracker.saved_ns >= options.state_interval_s * 1e9
            ):
                await worker.run(tracker.save, engine.store, now)
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
                if tracker is not None:  # an ack between throttled saves is not lost
                    await worker.run(tracker.save, engine.store)
            if now - last_prune >= options.prune_interval_s:
                last_prune = now
                await worker.run(engine.commands.prune, time.time_ns())
            if not batches:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=options.poll_interval_s)

    tasks = [  # the session ends when one of them does (a transport error) or on stop
        spawn(receive(), name="sync-receive"),
        spawn(pump(), name="sync-pump"),
        spawn(engine.pcap_sender.run(conn), name="sync-pcap"),  # streams PCAP transfers
    ]
    await supervise(tasks, stop, "sync session")
    if stop.is_set():
        # Clean shutdown: say offline ourselves (a clean disconnect suppresses the will).
        with contextlib.suppress(SyncTransportError):
            await publish_all(conn, [engine.will()])
