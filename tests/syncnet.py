"""An in-memory stand-in for the broker between ``SensorSync`` and ``CentralSync``.

It keeps what MQTT QoS 1 with persistent sessions gives: per-direction FIFO queues that hold
messages while the receiver is offline, lost only when the broker dies without persistence;
duplicates can be injected. Time is a counter the test advances. Used by the sync unit and
property tests (no broker, no threads).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy import select

from otwatch.agent.store.models import Alert as SensorAlert
from otwatch.central.ingest import CentralSync
from otwatch.central.store.models import Alert as CentralAlert
from otwatch.sync.protocol.outgoing import Outgoing
from otwatch.sync.sensor_sync import SensorSync
from tests.factories import SEC

COMPARED = ("status", "close_reason", "severity", "detections", "last_detection_ns", "type_id")


@dataclass
class Net:
    sensor: SensorSync
    central: CentralSync
    now: int = 1_800_000_000 * SEC
    sensor_online: bool = False
    central_online: bool = False
    up: deque[Outgoing] = field(default_factory=deque)
    down: deque[Outgoing] = field(default_factory=deque)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    delivered: int = 0

    def tick(self, seconds: float = 0.1) -> None:
        self.now += int(seconds * SEC)

    # -- connections --------------------------------------------------------------------

    def connect_sensor(self) -> None:
        if not self.sensor_online:
            self.sensor_online = True
            self._sensor_out(self.sensor.on_connect(self.now))

    def disconnect_sensor(self) -> None:
        if self.sensor_online:
            self.sensor_online = False
            self.sensor.on_disconnect()

    def connect_central(self) -> None:
        if not self.central_online:
            self.central_online = True
            self._central_out(self.central.on_connect(self.now))

    def disconnect_central(self) -> None:
        self.central_online = False

    def broker_crash(self) -> None:
        """The broker dies without persistence: queued messages are gone, everyone drops."""
        self.up.clear()
        self.down.clear()
        self.disconnect_sensor()
        self.disconnect_central()

    # -- traffic --------------------------------------------------------------------------

    def _sensor_out(self, messages: list[Outgoing]) -> None:
        for m in messages:
            if self.sensor_online:
                self.up.append(m)
                self.sensor.published(m, self.now)
            else:
                self.sensor.publish_failed(m)

    def _central_out(self, messages: list[Outgoing] | tuple[Outgoing, ...]) -> None:
        if self.central_online:
            self.down.extend(messages)

    def deliver_group(self) -> None:
        """Central takes every queued message at once, as its service does with what
        arrived while it was writing (``CentralSync.on_messages``: group commit)."""
        if self.central_online and self.up:
            group = [(m.topic, m.payload) for m in self.up]
            self.up.clear()
            self._central_out(self.central.on_messages(group, self.now))

    def duplicate_one(self) -> None:
        queue = self.up if self.rng.random() < 0.5 else self.down
        if queue:
            queue.append(queue[self.rng.randrange(len(queue))])

    def step(self) -> bool:
        """Deliver one message each way and run the timers; False when nothing moved."""
        moved = False
        if self.central_online and self.up:
            m = self.up.popleft()
            self._central_out(self.central.on_message(m.topic, m.payload, self.now))
            moved = True
        if self.sensor_online and self.down:
            m = self.down.popleft()
            self._sensor_out(self.sensor.on_message(m.topic, m.payload, self.now))
            for stream in self.sensor.pcap_sender.drain():  # the daemon streams these
                self._sensor_out(list(stream.messages()))
            moved = True
        if self.sensor_online:
            out = self.sensor.poll(self.now)
            moved |= bool(out)
            self._sensor_out(out)
        if self.central_online:
            self._central_out(self.central.poll(self.now))
        self.delivered += moved
        return moved

    def settle(self, max_steps: int = 10_000, seconds_per_step: float = 0.05) -> None:
        """Run until both sides are quiet (time moves so held-back updates go out)."""
        quiet = 0
        for _ in range(max_steps):
            self.tick(seconds_per_step)
            quiet = 0 if self.step() else quiet + 1
            if quiet > 60 and not self.up and not self.down:
                return
        raise AssertionError("sync did not settle")

    def issue(self, sensor_id, command, **kwargs):
        """Issue a command by kind string or as a spec (``otwatch.central.commands``)."""
        if isinstance(command, str):
            result = self.central.issue_command(sensor_id, command, now=self.now, **kwargs)
        else:
            result = self.central.issue(sensor_id, command, now=self.now, **kwargs)
        self._central_out(result.outgoing)
        return result


def sensor_alerts(sensor: SensorSync) -> dict[int, tuple]:
    with sensor.store.session() as s:
        return {
            a.id: tuple(getattr(a, k) for k in COMPARED) for a in s.scalars(select(SensorAlert))
        }


def central_alerts(central: CentralSync, sensor_id: str) -> dict[int, tuple]:
    with central.store.session() as s:
        rows = s.scalars(select(CentralAlert).where(CentralAlert.sensor == sensor_id))
        return {a.alert_id: tuple(getattr(a, k) for k in COMPARED) for a in rows}
