"""Faults during a sync: the broker, the sensor's sync daemon or central killed (SIGKILL) and
restarted again and again while events stream, at seeded random moments.

Everything is real: a private Mosquitto on loopback without persistence (what it held is
gone with it), ``otwatch sync run`` and ``otwatch central run`` as subprocesses, SQLite files
on both ends. After every kill: both databases pass ``PRAGMA integrity_check`` and every
alert whose event central had acknowledged (the sensor's persisted high-water mark) is in
central's database. At the end central's alert table equals the sensor's (no alert lost, none
duplicated), and every change event is in central's audit log exactly once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, func, select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models import OutboxEvent
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.lifecycle import Action
from otwatch.central.store.models import AuditEvent as CentralAudit
from tests.factories import T0
from tests.faults.harness import AckLog, Plan, integrity, kill9, plans, report
from tests.integration.central_procs import CentralProcess
from tests.integration.mqtt_broker import make_broker  # noqa: F401
from tests.integration.sync_procs import (
    SensorDaemon,
    bulk_alerts,
    central_table,
    sensor_table,
    wait_until,
)

SEVERITIES = ("low", "medium", "high")


class SyncWorld:
    """Sensor store + sync daemon + broker + central, each restartable."""

    def __init__(self, tmp_path, broker) -> None:
        self.tmp = tmp_path
        self.broker = broker
        self.sensor_dir = tmp_path / "sensor"
        self.store = open_store(self.sensor_dir)
        self.manager = AlertManager(self.store, load_catalog(), sensor_id="s1")
        self.central_db = tmp_path / "central" / "central.db"
        self.central_db.parent.mkdir(parents=True, exist_ok=True)
        self.db_url = f"sqlite:///{self.central_db}"
        # Maintenance at its production pace (the helper's 1 s default runs alert unification
        # back to back against tens of thousands of new alerts; see docs/reliability.md).
        self.central = CentralProcess(
            tmp_path / "central", self.db_url, broker.url, "--maintenance-interval", "60"
        ).start()
        self.daemon = SensorDaemon(self.sensor_dir, broker.url).start()
        self.acks = AckLog(self.store)
        self.alerts = 0
        self.changes = 0

    # -- the sensor's side --------------------------------------------------------------

    def add_alerts(self, count: int) -> None:
        first = self.alerts + 1
        ids = list(range(first, first + count))
        self.acks.write(lambda: (bulk_alerts(self.store, first, count, T0), ids)[1])
        self.alerts += count

    def change_severities(self, rng: random.Random, count: int) -> None:
        targets = sorted(rng.sample(range(1, self.alerts + 1), min(count, self.alerts)))
        value = rng.choice(SEVERITIES)

        def apply() -> list[int]:
            results = self.manager.apply(targets, Action.SET_SEVERITY, actor="ana", value=value)
            return [r.alert_id for r in results if r.outcome == "applied"]

        self.changes += self.acks.write(apply)

    # -- checks -------------------------------------------------------------------------

    def equal(self) -> bool:
        try:
            return sensor_table(self.store) == central_table(self.db_url)
        except Exception:  # central's file mid-restart or locked: not equal yet
            return False

    def central_changes(self) -> int:
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return int(
                    conn.scalar(
                        select(func.count(CentralAudit.id)).where(
                            CentralAudit.sensor == "s1", CentralAudit.action == "severity"
                        )
                    )
                )
        finally:
            engine.dispose()

    def caught_up(self) -> bool:
        """Cheap: every outbox event acknowledged (then the tables are compared once)."""
        return self.in_flight() == 0

    def in_flight(self) -> int:
        """Outbox events written but not yet acknowledged."""
        with self.store.session() as s:
            newest = int(s.scalar(select(func.max(OutboxEvent.seq))) or 0)
        return max(0, newest - self.acks.hw())

    def check_after_kill(self) -> int:
        """Integrity of both databases; acknowledged alerts are all central. Returns how many
        acknowledged alerts were checked."""
        assert integrity(self.sensor_dir / "otwatch.db") == "ok"
        assert integrity(self.central_db) == "ok"
        hw, acked = self.acks.acked()
        missing = acked - set(central_table(self.db_url))
        assert not missing, f"{len(missing)} acknowledged alerts (hw {hw}) not in central"
        return len(acked)

    def stop(self) -> None:
        self.daemon.stop()
        self.central.stop()
        self.store.close()


@pytest.fixture
def sync_world(tmp_path, make_broker):  # noqa: F811
    world = SyncWorld(tmp_path, make_broker())
    yield world
    world.stop()


def _victim(world: SyncWorld, name: str) -> tuple[Callable[[], bool], Callable[[], None]]:
    """(kill, restart) for one part of the system."""
    if name == "broker":
        return (lambda: (world.broker.kill(), True)[1]), world.broker.start
    if name == "sync":
        return (lambda: kill9(world.daemon.proc)), world.daemon.start

    def restart_central() -> None:
        world.central._fh.close()
        world.central.proc = None
        world.central.start()

    return (lambda: kill9(world.central.proc)), restart_central


def run_kills(world: SyncWorld, victim: str, plan: Plan) -> dict:
    rng = random.Random(f"{victim}-{plan.seed}")
    kill, restart = _victim(world, victim)
    chunk = plan.events // (plan.kills + 1)
    kills = in_flight_at_kill = acked_checked = 0
    started = time.monotonic()
    for k in range(plan.kills + 1):
        size = chunk if k < plan.kills else plan.events - world.alerts
        hw = world.acks.hw()
        world.add_alerts(size // 2)
        if k:
            world.change_severities(rng, 25)
        if k == plan.kills:
            world.add_alerts(size - size // 2)
            break
        # A random moment of the stream: central has acknowledged part of this chunk, the
        # rest is on its way.
        wait_until(lambda: world.acks.hw() > hw, 60, f"acks before kill {k + 1}")  # noqa: B023
        world.add_alerts(size - size // 2)
        time.sleep(rng.uniform(0.0, 0.2))
        in_flight = world.in_flight()
        assert kill(), f"{victim} was not running at kill {k + 1}"
        kills += 1
        in_flight_at_kill += in_flight > 0
        acked_checked = max(acked_checked, world.check_after_kill())
        time.sleep(rng.uniform(0.1, 1.0))  # down for a while, events keep coming
        restart()
    wait_until(world.caught_up, 60 + plan.events / 250, "every event acknowledged")
    wait_until(world.equal, 30, "central to equal the sensor")
    assert len(central_table(world.db_url)) == plan.events
    assert world.central_changes() == world.changes, "change events lost or duplicated"
    assert world.daemon.alive() and world.central.proc.poll() is None
    assert integrity(world.sensor_dir / "otwatch.db") == "ok"
    assert integrity(world.central_db) == "ok"
    figures = {
        "victim": victim,
        "kills": kills,
        "kills_with_events_in_flight": in_flight_at_kill,
        "events": plan.events,
        "changes": world.changes,
        "central_alerts": len(central_table(world.db_url)),
        "acked_alerts_checked_max": acked_checked,
        "lost": 0,
        "duplicated": 0,
        "seconds": round(time.monotonic() - started, 1),
    }
    report(f"sync-{victim}", **figures)
    return figures


@pytest.mark.parametrize("plan", plans(Plan(3, 5_000), Plan(10, 50_000)))
def test_broker_killed_during_sync(sync_world, plan):
    figures = run_kills(sync_world, "broker", plan)
    assert figures["kills_with_events_in_flight"] >= 1


@pytest.mark.parametrize("victim", ["sync", "central"])
@pytest.mark.parametrize("plan", plans(Plan(3, 3_000), Plan(20, 40_000)))
def test_kill9_during_sync(sync_world, victim, plan):
    figures = run_kills(sync_world, victim, plan)
    assert figures["kills_with_events_in_flight"] >= 1
