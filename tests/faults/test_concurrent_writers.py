"""CLI, agent and sync daemon writing the same SQLite database at once, under load.

``otwatch agent replay --ring`` runs over and over (alerts, detections, ring index rows), the
sync daemon streams the outbox to central (marking, deleting, acknowledging), and two CLI
loops run bulk ``alerts set-status`` and ``alerts comment`` as subprocesses on their own
alerts. Every CLI call must exit 0 without a "database is locked" (or any) error, every
change must be in the store (final statuses, one audit row per comment), the replays must
all succeed, and central must end equal to the sensor.
"""

from __future__ import annotations

import random
import subprocess
import threading

import pytest
from sqlalchemy import func, select

from bench.gen_capture import modbus_polling
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models import Alert, AuditEvent
from otwatch.sync.transport import BrokerConfig
from tests.factories import T0
from tests.faults.harness import Plan, integrity, plans, report
from tests.integration.central_procs import otwatch
from tests.integration.mqtt_broker import make_broker, mosquitto  # noqa: F401
from tests.integration.sync_procs import (
    OTWATCH,
    CentralThread,
    SensorDaemon,
    bulk_alerts,
    central_table,
    sensor_table,
    wait_until,
)

TRIAGED = 600
"""Alerts the CLI loops work on (ids 1..TRIAGED); the replays raise the others."""
STATUSES = ("active", "closed", "new")


class CliLoop(threading.Thread):
    """``calls`` CLI invocations on the alerts ``first, first + step, …``; keeps what it
    expects the store to hold and every failure it saw."""

    def __init__(self, data_dir, ids: list[int], calls: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.data_dir, self.ids, self.calls = data_dir, ids, calls
        self.rng = random.Random(seed)
        self.expected: dict[int, str] = {}
        self.comments = 0
        self.failures: list[str] = []
        self.done = 0

    def run(self) -> None:
        for n in range(self.calls):
            if n % 3 == 2:
                alert_id = self.rng.choice(self.ids)
                result = otwatch("--data-dir", str(self.data_dir), "alerts", "comment",
                                 str(alert_id), f"note {n} under load")  # fmt: skip
                self.comments += result.returncode == 0
            else:
                chosen = sorted(self.rng.sample(self.ids, 50))
                status = self.rng.choice(
                    [s for s in STATUSES if all(self.expected.get(i, "new") != s for i in chosen)]
                    or ["closed"]
                )
                result = otwatch("--data-dir", str(self.data_dir), "alerts", "set-status",
                                 status, *map(str, chosen))  # fmt: skip
                if result.returncode == 0:
                    self.expected.update(dict.fromkeys(chosen, status))
            self.done += 1
            if result.returncode != 0 or "locked" in result.stderr + result.stdout:
                self.failures.append(f"exit {result.returncode}: {result.stderr.strip()[-300:]}")


class ReplayLoop(threading.Thread):
    """``otwatch agent replay --ring`` again and again until told to stop."""

    def __init__(self, data_dir, capture) -> None:
        super().__init__(daemon=True)
        self.args = [str(OTWATCH), "--data-dir", str(data_dir), "agent", "replay", "--ring",
                     "--ring-segment-size", "1MiB", "--sensor-id", "s1", str(capture)]  # fmt: skip
        self.stop = threading.Event()
        self.runs = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            result = subprocess.run(self.args, capture_output=True, text=True, timeout=600)
            self.runs += 1
            if result.returncode != 0 or "locked" in result.stderr:
                self.failures.append(f"exit {result.returncode}: {result.stderr[-300:]}")


@pytest.mark.parametrize("plan", plans(Plan(6, 40_000), Plan(100, 150_000)))
def test_cli_agent_and_sync_write_at_once(tmp_path, mosquitto, plan):  # noqa: F811
    data_dir = tmp_path / "sensor"
    store = open_store(data_dir)
    bulk_alerts(store, 1, TRIAGED, T0)
    capture = tmp_path / "plant.pcap"
    modbus_polling(str(capture), plan.events, 10, plan.seed)
    db_url = f"sqlite:///{tmp_path / 'central.db'}"
    central = CentralThread(db_url, BrokerConfig().with_url(mosquitto.url)).start()
    daemon = SensorDaemon(data_dir, mosquitto.url).start()
    replays = ReplayLoop(data_dir, capture)
    ids = list(range(1, TRIAGED + 1))
    clis = [CliLoop(data_dir, ids[w::2], plan.kills, plan.seed + w) for w in range(2)]
    try:
        replays.start()
        for loop in clis:
            loop.start()
        for loop in clis:
            loop.join(1800)
        replays.stop.set()
        replays.join(600)
        assert [f for loop in clis for f in loop.failures] == []
        assert replays.failures == [] and replays.runs >= 1
        assert daemon.alive()
        with store.session() as s:
            rows = s.execute(select(Alert.id, Alert.status).where(Alert.id <= TRIAGED)).all()
            comments = s.scalar(
                select(func.count(AuditEvent.id)).where(AuditEvent.action == "comment")
            )
        statuses = dict(rows)
        for loop in clis:
            assert {i: statuses[i] for i in loop.expected} == loop.expected
        assert comments == sum(loop.comments for loop in clis)
        assert integrity(data_dir / "otwatch.db") == "ok"
        wait_until(lambda: sensor_table(store) == central_table(db_url), 120, "central to catch up")
        calls = sum(loop.done for loop in clis)
        assert calls == 2 * plan.kills
        report(
            "concurrent-writers",
            cli_calls=calls,
            cli_failures=0,
            status_changes=sum(len(loop.expected) for loop in clis),
            comments=comments,
            replays=replays.runs,
            packets_per_replay=plan.events,
            alerts=len(sensor_table(store)),
            central_equal=True,
        )
    finally:
        replays.stop.set()
        daemon.stop()
        central.stop()
        store.close()
