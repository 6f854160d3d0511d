"""The README's first command, ``otwatch demo``: run end to end, then check each step's effect in
the sensor's and central's databases, the pulled PCAP, and that every process stopped.

The full run takes about a minute (``slow``); the default run checks the demo's parts: the
private broker, the clear message when Mosquitto is missing, a failed daemon named with its
log."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from otwatch.agent.store.models import Alert as SensorAlert
from otwatch.agent.store.models import AuditEvent
from otwatch.agent.store.models_devices import DeviceRow
from otwatch.agent.store.readonly import open_for_reading
from otwatch.central.store.db import open_central_store
from otwatch.central.store.models import Alert as CentralAlert
from otwatch.central.store.models_devices import CentralDevice
from otwatch.demo import parts
from otwatch.demo.parts import Broker, DemoError, Process, find_mosquitto
from tests.integration.mqtt_broker import MOSQUITTO

ATTACKS = {
    "new_asset_detected",
    "port_scan_detected",
    "illegal_connection_attempt_on_port_0",
    "unpermitted_usage_of_modbus_function_code",
    "modbus_exception",
}
needs_mosquitto = pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto missing")


def closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


@needs_mosquitto
def test_demo_end_to_end(tmp_path):
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "otwatch.cli", "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,  # not a terminal: the demo stops at the end
    )
    out = result.stdout + result.stderr
    assert re.search(r"portal: http://127\.0\.0\.1:\d+/ +\(sign in as 'demo', password '", out)
    assert result.returncode == 0, out
    assert "Traceback" not in out

    # Everything it started listened on loopback and is gone.
    broker_port = int(re.search(r"mosquitto listening on mqtt://127\.0\.0\.1:(\d+)", out)[1])
    api_port = int(re.search(r"API on http://127\.0\.0\.1:(\d+)", out)[1])
    assert closed(broker_port) and closed(api_port)
    for name in ("sync", "central", "mosquitto"):
        assert f"{name}: exit status 0" in out

    # Central holds every attack step, with the triage made centrally and on the sensor.
    central = open_central_store(f"sqlite:///{workdir / 'central' / 'central.db'}")
    with central.session() as s:
        at_central = {
            (a.type_id, a.source_address): (a.status, a.close_reason)
            for a in s.scalars(select(CentralAlert))
        }
    central.close()
    assert {t for t, _ in at_central} >= ATTACKS
    assert at_central[("port_scan_detected", "192.0.2.66")] == ("active", None)
    learned = ("unpermitted_usage_of_modbus_function_code", "192.0.2.10")
    assert at_central[learned] == ("closed", "learned")
    assert at_central[("modbus_exception", "192.0.2.20")] == ("closed", "muted")

    # The sensor applied central's status change and learn, audited with origin central.
    sensor = open_for_reading(workdir / "sensor")
    with sensor.session() as s:
        alerts = {(a.type_id, a.source_address): a for a in s.scalars(select(SensorAlert))}
        scan = alerts[("port_scan_detected", "192.0.2.66")]
        diag = alerts[learned]
        assert (scan.status, diag.status, diag.close_reason) == ("active", "closed", "learned")
        origins = {
            (e.alert_id, e.action, e.origin)
            for e in s.scalars(select(AuditEvent).where(AuditEvent.origin == "central"))
        }
    sensor.close()
    assert any(a == scan.id for a, _, _ in origins) and any(a == diag.id for a, _, _ in origins)
    assert "type 'modbus_exception' is not learnable" in out

    # The device inventory on the sensor and at central; a name set centrally is applied.
    assert "$ otwatch --data-dir" in out and " devices list" in out
    assert "$ otwatch --central http://127.0.0.1" in out and "central devices list" in out
    assert "central shows the name applied by the sensor" in out
    central = open_central_store(f"sqlite:///{workdir / 'central' / 'central.db'}")
    with central.session() as s:
        named = s.scalars(select(CentralDevice).where(CentralDevice.name == "PLC-line-1")).one()
        assert named.device_type == "PLC" and named.central_override["state"] == "applied"
        assert s.scalar(select(func.count()).select_from(CentralDevice)) >= 5
    central.close()
    sensor = open_for_reading(workdir / "sensor")
    with sensor.session() as s:
        assert s.scalars(select(DeviceRow).where(DeviceRow.name_override == "PLC-line-1")).one()
    sensor.close()

    # The PCAP came through central, verified, with progress shown.
    pcap = (workdir / "scan.pcap").read_bytes()
    assert pcap[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\x0a\x0d\x0d\x0a")
    assert len(pcap) > 1000
    assert re.search(r"pcap 2-demo-sensor: .+", out) and "verified" in out

    # Health at the end, and where the data is.
    assert "sensors: 1 (1 online" in out and "outbox    0 event(s) pending" in out
    assert re.search(r"finished in \d+ s\. The data stays in ", out)
    assert str(workdir / "central" / "central.db") in out


@needs_mosquitto
def test_private_broker_on_loopback(tmp_path):
    broker = Broker(MOSQUITTO, tmp_path / "broker").start()
    try:
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        assert (
            f"listener {broker.port} 127.0.0.1" in (tmp_path / "broker/mosquitto.conf").read_text()
        )
        assert not closed(broker.port)
    finally:
        assert broker.stop() == 0
    assert closed(broker.port)


def test_missing_mosquitto_is_one_clear_message(monkeypatch):
    monkeypatch.setattr(parts.shutil, "which", lambda _name: None)
    monkeypatch.setattr(parts.Path, "exists", lambda _self: False)
    with pytest.raises(DemoError, match="install it \\(sudo apt-get install mosquitto"):
        find_mosquitto(False, print)


def test_a_daemon_that_exits_is_named_with_its_log(tmp_path):
    proc = Process("central", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
                   tmp_path / "central.log").start()  # fmt: skip
    proc.proc.wait(30)
    with pytest.raises(DemoError, match=r"central exited with status 3; see .*central\.log:\nboom"):
        proc.check()
