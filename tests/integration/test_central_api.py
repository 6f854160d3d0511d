"""``otwatch alerts … --central`` end to end: a real ``otwatch central run --listen`` on a
loopback port, a real Mosquitto, the sensor's ``otwatch sync run``; tokens made with the CLI;
triage reaches the sensor; PCAP pulled through central is byte-identical to ``otwatch pcap get``
on the sensor, also across a sensor outage."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from otwatch.agent.store.models import Alert as SensorAlert
from tests.integration.central_procs import CentralProcess, otwatch, sensor_with_pcaps
from tests.integration.mqtt_broker import make_broker, mosquitto  # noqa: F401
from tests.integration.sync_procs import SensorDaemon, wait_until


def sensor_status(store, alert_id: int) -> str:
    with store.session() as s:
        return s.scalar(select(SensorAlert.status).where(SensorAlert.id == alert_id))


@pytest.fixture
def plant(tmp_path, mosquitto):  # noqa: F811
    store = sensor_with_pcaps(tmp_path / "sensor")
    db_url = f"sqlite:///{tmp_path / 'central' / 'central.db'}"
    tokens = {}
    for name, role in (("ops", "admin"), ("auditor", "reader")):
        made = otwatch("central", "token", "create", "--name", name, "--role", role, "--db", db_url)
        assert made.returncode == 0, made.stderr
        tokens[role] = made.stdout.strip()
    central = CentralProcess(tmp_path / "central", db_url, mosquitto.url).start()
    daemon = SensorDaemon(tmp_path / "sensor", mosquitto.url).start()
    parts = [central, daemon]
    yield tmp_path, store, central, daemon, tokens
    for part in parts:
        part.stop()
    store.close()


def test_cli_against_central_end_to_end(plant):
    tmp_path, store, central, daemon, tokens = plant
    admin = {"OTWATCH_CENTRAL_URL": central.url, "OTWATCH_CENTRAL_TOKEN": tokens["admin"]}
    reader = ["--central", central.url, "--token", tokens["reader"]]

    def listed():
        out = otwatch(*reader, "alerts", "list", "--format", "json")
        return json.loads(out.stdout) if out.returncode == 0 else []

    rows = wait_until(lambda: len(listed()) == 3 and listed(), 30, "3 alerts centrally")
    assert [r["id"] for r in rows] == ["3-s1", "2-s1", "1-s1"]
    assert {"sensor", "site", "zone", "source_address", "last_detection"} <= set(rows[0])
    counts = json.loads(
        otwatch(*reader, "alerts", "list", "--group-by", "severity", "--format", "json").stdout
    )
    assert counts == [{"severity": "medium", "count": 3}]
    shown = json.loads(otwatch(*reader, "alerts", "show", "2-s1", "--format", "json").stdout)
    assert shown["remediation"] and shown["seen_by"][0]["sensor"] == "s1"

    # roles: the reader may not change anything
    refused = otwatch(*reader, "alerts", "set-status", "closed", "1-s1")
    assert refused.returncode == 1 and "permission denied (403)" in refused.stderr
    # triage through central reaches the sensor
    done = otwatch("alerts", "set-status", "closed", "1-s1", "--format", "json", env=admin)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["outcome"] == "applied"
    wait_until(lambda: sensor_status(store, 1) == "closed", 30, "the sensor to close alert 1")
    muted = otwatch("alerts", "mute", "2-s1", env=admin)
    assert muted.returncode == 1 and "only possible on the sensor" in muted.stderr
    sensor_id = otwatch("alerts", "show", "2", env=admin)
    assert sensor_id.returncode == 2 and "central id" in sensor_id.stderr

    # CSV export of a filtered selection
    csv_out = tmp_path / "open.csv"
    exported = otwatch("alerts", "export", "--status", "new", "-o", str(csv_out), env=admin)
    assert exported.returncode == 0 and "exported 2 alerts" in exported.stderr
    assert csv_out.read_text().splitlines()[0].startswith("id,name,severity")

    # PCAP: byte-identical to `otwatch pcap get` on the sensor
    local = tmp_path / "local.pcap"
    got = otwatch("--data-dir", str(tmp_path / "sensor"), "pcap", "get", "1", "-o", str(local))
    assert got.returncode == 0, got.stderr
    pulled = tmp_path / "central.pcap"
    pull = otwatch("alerts", "pcap", "1-s1", "-o", str(pulled), env=admin)
    assert pull.returncode == 0, pull.stderr
    assert "verified" in pull.stderr
    assert pulled.read_bytes() == local.read_bytes() and len(local.read_bytes()) > 1000
    # a PCAP the sensor does not have
    gone = otwatch("alerts", "pcap", "3-s1", "-o", str(tmp_path / "x.pcap"), env=admin)
    assert gone.returncode == 1 and "no longer has the PCAP" in gone.stderr

    # sensor offline: the request stays pending, and completes once the sensor is back
    daemon.kill9()
    wait_until(
        lambda: (
            "offline" in otwatch(*reader, "alerts", "show", "2-s1").stdout
            or not json.loads(
                otwatch(*reader, "alerts", "show", "2-s1", "--format", "json").stdout
            )["seen_by"][0]["sensor_online"]
        ),
        30,
        "central to see the sensor offline",
    )
    late = tmp_path / "late.pcap"
    waiting = otwatch("alerts", "pcap", "2-s1", "-o", str(late), "--wait", "1", env=admin)
    assert waiting.returncode == 1 and "offline" in waiting.stderr
    assert "still pending" in waiting.stderr and not late.exists()
    daemon.start()
    back = otwatch("alerts", "pcap", "2-s1", "-o", str(late), "--wait", "60", env=admin)
    assert back.returncode == 0, back.stderr
    expected = tmp_path / "local2.pcap"
    otwatch("--data-dir", str(tmp_path / "sensor"), "pcap", "get", "2", "-o", str(expected))
    assert late.read_bytes() == expected.read_bytes()


def test_listen_refuses_non_loopback_without_allow_remote(tmp_path):
    out = otwatch("central", "run", "--db", str(tmp_path / "c.db"), "--listen", "0.0.0.0:8470")
    assert out.returncode == 1 and "not a loopback address" in out.stderr
    assert "--allow-remote" in out.stderr
