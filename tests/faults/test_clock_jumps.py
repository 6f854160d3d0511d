"""The sensor's clock jumps by ±1 h: triage order and conflict resolution stay correct.

Sensor-side triage runs the way the CLI does (a fresh ``AlertManager`` per action, its HLC
loaded from the store) with the sensor's wall clock injected: first off by an hour, then
jumping back to the right time (``-1h``: the sensor ran an hour ahead) or forward to it
(``+1h``: an hour behind). Central and the sync daemon keep the right time; the broker,
``otwatch sync run`` and central's service are real. What must hold, on both ends:

- a change made after seeing another change wins over it, whatever the clocks say (A, B);
- two changes of one alert on the sensor, before and after the jump, keep their order (C),
  also in central's history sorted by HLC;
- changes made on both sides during a broker outage (concurrent) converge to the one with the
  higher HLC (D), and a command applied by the long-running daemon during that outage does
  not pull the sensor's clock back below what it already stamped (E);
- alerts raised after the jump keep their order.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models import Alert
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.lifecycle import Action
from otwatch.central.store.models import Alert as CentralAlert
from otwatch.central.store.models import AuditEvent as CentralAudit
from otwatch.central.store.models import Command
from otwatch.sync.transport import BrokerConfig
from tests.factories import SEC, T0, detection
from tests.faults.harness import report
from tests.integration.mqtt_broker import make_broker  # noqa: F401
from tests.integration.sync_procs import (
    CentralThread,
    SensorDaemon,
    central_table,
    sensor_table,
    wait_until,
)

HOUR_NS = 3600 * 1_000_000_000


class Sensor:
    """The sensor store and its (injected) wall clock."""

    def __init__(self, data_dir, offset_ns: int) -> None:
        self.store = open_store(data_dir)
        self.catalog = load_catalog()
        self.offset_ns = offset_ns
        self.agent = self.manager()

    def wall_ns(self) -> int:
        return time.time_ns() + self.offset_ns

    def manager(self) -> AlertManager:
        """What one CLI invocation builds: its clock is loaded from the store."""
        return AlertManager(self.store, self.catalog, sensor_id="s1", wall_ns=self.wall_ns)

    def act(self, alert_id: int, action: Action, value: str) -> int:
        """Triage like ``otwatch alerts …``; returns the field's new HLC."""
        [result] = self.manager().apply([alert_id], action, actor="ana", value=value)
        assert result.outcome == "applied", result
        with self.store.session() as s:
            alert = s.get(Alert, alert_id)
            return alert.severity_hlc if action == Action.SET_SEVERITY else alert.status_hlc

    def row(self, alert_id: int) -> tuple:
        return sensor_table(self.store)[alert_id]


def _central_row(db_url: str, alert_id: int) -> tuple | None:
    return central_table(db_url).get(alert_id)


def _history(central: CentralThread, alert_id: int) -> list[tuple[int, str]]:
    """Central's status history of an alert as (hlc, value after), sorted by HLC."""
    with central.store.session() as s:
        rows = s.scalars(
            select(CentralAudit).where(
                CentralAudit.sensor == "s1", CentralAudit.alert_id == alert_id
            )
        ).all()
    out = []
    for row in rows:
        after = (row.detail or {}).get("after") or {}
        if row.action == "status" and "hlc" in row.detail and after.get("status"):
            out.append((int(row.detail["hlc"]), after["status"]))
    return sorted(out)


@pytest.mark.parametrize("jump_ns", [-HOUR_NS, HOUR_NS], ids=["back-1h", "forward-1h"])
def test_sensor_clock_jump(tmp_path, make_broker, jump_ns):  # noqa: F811
    broker = make_broker()
    sensor = Sensor(tmp_path / "sensor", offset_ns=-jump_ns)
    for n in range(1, 7):  # alerts 1..6
        sensor.agent.observe(detection(src=f"192.0.2.{n}", ts_ns=T0 + n * SEC))
    sensor.agent.flush()
    db_url = f"sqlite:///{tmp_path / 'central.db'}"
    central = CentralThread(db_url, BrokerConfig().with_url(broker.url)).start()
    daemon = SensorDaemon(tmp_path / "sensor", broker.url).start()
    status, severity = 0, 2  # indexes in sync_procs.COMPARED

    def central_has(alert_id: int, index: int, value: str) -> bool:
        row = _central_row(db_url, alert_id)
        return row is not None and row[index] == value

    def sensor_has(alert_id: int, index: int, value: str) -> bool:
        return sensor.row(alert_id)[index] == value

    try:
        central.wait_connected()
        wait_until(lambda: sensor_table(sensor.store) == central_table(db_url), 30, "first sync")
        # -- the sensor's clock is off by an hour --
        sensor.act(1, Action.SET_STATUS, "active")  # A: sensor, then central after seeing it
        wait_until(lambda: central_has(1, status, "active"), 20, "A at central")
        central.issue("s1", "status", alert_id=1, value="closed", actor="admin")
        central.issue("s1", "severity", alert_id=2, value="high", actor="admin")  # B
        wait_until(lambda: sensor_has(2, severity, "high"), 20, "B at the sensor")
        sensor.act(2, Action.SET_SEVERITY, "low")
        c1 = sensor.act(3, Action.SET_STATUS, "active")  # C: before the jump
        wait_until(lambda: sensor_has(1, status, "closed"), 20, "A at the sensor")
        # D, E: both sides change alerts while the broker is down.
        broker.kill()
        e1 = sensor.act(5, Action.SET_STATUS, "active")
        d_sensor = sensor.act(4, Action.SET_STATUS, "closed")
        issued = central.issue("s1", "status", alert_id=4, value="active", actor="admin")
        with central.store.session() as s:
            d_central = s.get(Command, issued.command_id).hlc
        e_cmd = central.issue("s1", "severity", alert_id=6, value="high", actor="admin")
        # -- the clock jumps to the right time --
        sensor.offset_ns = 0
        broker.start()
        with central.store.session() as s:
            wait_until(
                lambda: all(
                    s.get(Command, c.command_id).status != "pending" for c in (issued, e_cmd)
                ),
                30,
                "D and E commands",
            )
            assert s.get(Command, e_cmd.command_id).status == "applied"
        c2 = sensor.act(3, Action.SET_STATUS, "closed")
        e2 = sensor.act(5, Action.SET_STATUS, "closed")
        later = sensor.manager()
        for n in range(7, 10):  # alerts 7..9, raised after the jump
            later.observe(detection(src=f"192.0.2.{n}", ts_ns=T0 + n * SEC))
        later.flush()
        try:
            wait_until(
                lambda: sensor_table(sensor.store) == central_table(db_url), 30, "convergence"
            )
        except AssertionError:
            ours, theirs = sensor_table(sensor.store), central_table(db_url)
            diff = {k: (v, theirs.get(k)) for k, v in ours.items() if theirs.get(k) != v}
            raise AssertionError(f"sensor and central differ (sensor, central): {diff}") from None
        final = sensor_table(sensor.store)
        d_winner = "closed" if d_sensor > d_central else "active"
        assert final[1][status] == "closed"  # A
        assert final[2][severity] == "low"  # B
        assert c2 > c1 and final[3][status] == "closed"  # C
        assert [v for _, v in _history(central, 3)][-2:] == ["active", "closed"]
        assert final[4][status] == d_winner  # D: the higher HLC, on both ends
        assert e2 > e1 and final[5][status] == "closed"  # E
        assert final[6][severity] == "high"
        with central.store.session() as s:
            order = s.scalars(
                select(CentralAlert.alert_id)
                .where(CentralAlert.sensor == "s1")
                .order_by(CentralAlert.first_detection_ns)
            ).all()
        assert order == sorted(final)
        assert daemon.alive()
        report(
            f"clock-jump-{'back' if jump_ns < 0 else 'forward'}-1h",
            scenarios=["A", "B", "C", "D", "E", "order"],
            d_winner=d_winner,
            hlc_c_before_after_ms=[c1 >> 16, c2 >> 16],
            converged=True,
        )
    finally:
        daemon.stop()
        central.stop()
        sensor.store.close()
