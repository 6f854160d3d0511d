"""The device inventory from sensor to central and overrides back, through a real Mosquitto,
a real ``otwatch central run --listen`` and the sensor's ``otwatch sync run``: a replayed
capture's devices appear in central's API with the identification's vendor/model; a PATCH
on central is applied on the sensor and shown applied; ``otwatch devices set`` on the sensor
reaches central; restarts keep everything; hostile device events are dropped with a reason
and the service keeps running."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from otwatch.agent.replay import replay
from otwatch.agent.store.db import open_store
from otwatch.agent.store.devices import find_device
from otwatch.central.store import devices as device_store
from otwatch.cli.main import cli
from otwatch.sync.transport import BrokerConfig
from tests.integration.central_procs import CentralProcess, otwatch
from tests.integration.mqtt_broker import HOST, make_broker, mosquitto  # noqa: F401
from tests.integration.sync_procs import CentralThread, SensorDaemon, wait_until

PCAPS = Path(__file__).resolve().parents[2] / ".." / "shared" / "pcaps"
PLC_IP = "10.1.1.164"  # enip_list_identity.pcap: a 1756-ENBT/A answering ListIdentity


def sensor_device(data_dir: Path, ref: str) -> dict[str, Any] | None:
    store = open_store(data_dir)
    try:
        with store.session() as s:
            row = find_device(s, ref)
            if row is None:
                return None
            return {"id": row.id, "name": row.name, "vendor": row.vendor, "model": row.model,
                    "firmware": row.firmware, "type": row.device_type,
                    "name_override": row.name_override,
                    "purdue_override": row.purdue_override}  # fmt: skip
    finally:
        store.close()


@pytest.fixture
def plant(tmp_path, mosquitto):  # noqa: F811
    data = tmp_path / "sensor"
    store = open_store(data)
    try:
        replay([PCAPS / "enip_list_identity.pcap"], store, learning_period_ns=0)
    finally:
        store.close()
    db_url = f"sqlite:///{tmp_path / 'central' / 'central.db'}"
    tokens = {}
    for name, role in (("ops", "admin"), ("auditor", "reader")):
        made = otwatch("central", "token", "create", "--name", name, "--role", role, "--db", db_url)
        assert made.returncode == 0, made.stderr
        tokens[role] = {"Authorization": f"Bearer {made.stdout.strip()}"}
    parts: dict[str, Any] = {
        "central": CentralProcess(tmp_path / "central", db_url, mosquitto.url).start(),
        "daemon": SensorDaemon(data, mosquitto.url).start(),
    }
    yield data, parts, tokens, db_url, mosquitto
    for part in parts.values():
        part.stop()


def devices(central: CentralProcess, headers, **params) -> list[dict[str, Any]]:
    try:
        answer = httpx.get(f"{central.url}/api/v1/devices", params=params, headers=headers)
    except httpx.HTTPError:
        return []
    return answer.json()["items"] if answer.status_code == 200 else []


def test_devices_reach_central_and_overrides_flow_both_ways(plant, tmp_path):
    data, parts, tokens, db_url, broker = plant
    central = parts["central"]
    on_sensor = sensor_device(data, PLC_IP)
    assert on_sensor is not None and on_sensor["model"] == "1756-ENBT/A"

    def plc() -> dict[str, Any] | None:
        found = devices(central, tokens["reader"], search=PLC_IP)
        return found[0] if found else None

    row = wait_until(plc, 30, "the PLC in central's device list")
    assert len(devices(central, tokens["reader"])) == 2
    # vendor, model and firmware from EtherNet/IP identification, as the sensor has them
    for key in ("vendor", "model", "firmware", "type"):
        assert row[key] == on_sensor[key], key
    assert row["vendor"].startswith("Rockwell") and row["sensor_id"] == "s1"
    assert row["sensor_device_id"] == on_sensor["id"]
    url = f"{central.url}/api/v1/devices/{row['id']}"
    detail = httpx.get(url, headers=tokens["reader"]).json()
    assert {f["source"] for f in detail["facts"]} >= {"enip-listidentity"}

    # an override made centrally: readers may not, admins may; applied on the sensor
    body = {"name": "line-3 <PLC>", "purdue_level": 1}
    assert httpx.patch(url, json=body, headers=tokens["reader"]).status_code == 403
    answer = httpx.patch(url, json=body, headers=tokens["admin"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["pending_override"]["state"] == "pending"
    wait_until(lambda: (sensor_device(data, PLC_IP) or {}).get("name_override") == body["name"],
               30, "the sensor to apply the override")  # fmt: skip
    assert sensor_device(data, PLC_IP)["purdue_override"] == 1
    shown = json.loads(
        CliRunner()
        .invoke(cli, ["--data-dir", str(data), "devices", "show", PLC_IP, "--format", "json"])
        .output
    )
    assert shown["name"] == "line-3 <PLC>"  # fmt: skip

    def applied() -> dict[str, Any] | None:
        d = httpx.get(url, headers=tokens["reader"]).json()
        return d if d["overrides"]["central"]["state"] == "applied" else None

    d = wait_until(applied, 30, "central to show the override applied")
    assert d["pending_override"] is None and d["name"] == "line-3 <PLC>"
    assert d["overrides"]["name"] == "line-3 <PLC>" and d["overrides"]["central"]["by"] == (
        "token:ops")  # fmt: skip

    # an override made on the sensor reaches central
    result = CliRunner().invoke(
        cli, ["--data-dir", str(data), "devices", "set", PLC_IP, "--type", "RTU/outstation"]
    )
    assert result.exit_code == 0, result.output
    wait_until(lambda: (plc() or {}).get("type") == "RTU/outstation", 30,
               "the sensor's override at central")  # fmt: skip
    assert plc()["overrides"]["type"] == "RTU/outstation"

    # the same through the CLI: otwatch central devices list|show|set
    def cli_as(role: str, *args: str):
        token = tokens[role]["Authorization"].split()[1]
        return otwatch("--central", central.url, "--token", token, "central", "devices", *args)

    listed = cli_as("reader", "list", "--search", PLC_IP, "--format", "json")
    assert listed.returncode == 0, listed.stderr
    [item] = json.loads(listed.stdout)
    assert item["id"] == row["id"] and item["type"] == "RTU/outstation"
    csv_out = cli_as("reader", "list", "--type", "HMI/SCADA client", "--format", "csv")
    assert csv_out.stdout.splitlines()[0].startswith("id,sensor_id,ip") and "10.1.1.167" in (
        csv_out.stdout)  # fmt: skip
    shown = cli_as("reader", "show", str(row["id"]))
    assert shown.returncode == 0 and "enip-listidentity" in shown.stdout
    refused = cli_as("reader", "set", str(row["id"]), "--purdue", "2")
    assert refused.returncode == 1 and "403" in refused.stderr
    done = cli_as("admin", "set", str(row["id"]), "--purdue", "2")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: (sensor_device(data, PLC_IP) or {}).get("purdue_override") == 2, 30,
               "the CLI's override on the sensor")  # fmt: skip
    missing = cli_as("reader", "show", "424242")
    assert missing.returncode == 1 and "does not exist" in missing.stderr

    # restarts keep it: central first, then the sensor's daemon
    parts["central"].stop()
    parts["central"] = central = CentralProcess(tmp_path / "central", db_url, broker.url).start()
    after = plc()
    assert after["name"] == "line-3 <PLC>" and after["type"] == "RTU/outstation"
    parts["daemon"].stop()
    parts["daemon"] = SensorDaemon(data, broker.url).start()
    assert sensor_device(data, PLC_IP)["name_override"] == "line-3 <PLC>"
    assert len(devices(central, tokens["reader"])) == 2

    # a device forgotten on the sensor is forgotten centrally
    result = CliRunner().invoke(
        cli, ["--data-dir", str(data), "devices", "forget", "10.1.1.167", "--yes"]
    )
    assert result.exit_code == 0, result.output
    wait_until(lambda: len(devices(central, tokens["reader"])) == 1, 30, "the forgotten device")


def _event(device: Any, seq: int) -> dict[str, Any]:
    return {"seq": seq, "id": str(uuid.uuid4()), "kind": "device", "ts_ns": 1,
            "device_id": seq, "device": device}  # fmt: skip


def _device(**over: Any) -> dict[str, Any]:
    snap = {"id": 1, "key": "192.0.2.10", "ip": "192.0.2.10", "type": "PLC",
            "first_seen_ns": 1, "last_seen_ns": 2}  # fmt: skip
    snap.update(over)
    return snap


def test_hostile_device_events_are_dropped_and_central_keeps_running(tmp_path, mosquitto):  # noqa: F811
    db_url = f"sqlite:///{tmp_path / 'central.db'}"
    central = CentralThread(db_url, BrokerConfig().with_url(mosquitto.url)).start()
    try:
        central.wait_connected()
        epoch = str(uuid.uuid4())
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="hostile")
        client.connect(HOST, mosquitto.port)
        client.loop_start()
        birth = {"v": 1, "sensor_id": "s9", "epoch": epoch, "version": "x", "acked_hw": 0,
                 "last_seq": 0, "ts_ns": 1}  # fmt: skip
        client.publish("otwatch/v1/s9/up/birth", json.dumps(birth), qos=1).wait_for_publish()
        wait_until(lambda: central.engine.streams.get("s9") is not None
                   and central.engine.streams["s9"].epoch == epoch, 10, "the birth")  # fmt: skip
        events = [
            _event(_device(peer_addresses=["192.0.2.1"] * 10_000), 1),  # oversized list
            _event(_device(type="Toaster"), 2),  # bad type
            _event(_device(purdue_level="high"), 3),  # bad type
            _event(_device(key="192.0.2.11", ip="192.0.2.11", vendor="Good"), 4),  # fine
        ]
        batch = {"v": 1, "sensor_id": "s9", "epoch": epoch, "events": events}
        client.publish("otwatch/v1/s9/up/events", json.dumps(batch), qos=1).wait_for_publish()
        client.publish("otwatch/v1/s9/up/events", b'{"v":1,"sensor_id":"s9","epoch":"' +
                       epoch.encode() + b'","events":[' + b"[" * 5000 + b"]}",
                       qos=1).wait_for_publish()  # fmt: skip
        wait_until(lambda: central.engine.stats["devices"] >= 1, 10, "the good device")
        assert central.engine.dropped["invalid_event"] == 3
        assert central.engine.dropped["malformed"] + central.engine.dropped["oversized"] >= 1
        with central.store.session() as s:
            rows, total = device_store.list_devices(s, device_store.DeviceQuery())
        assert total == 1 and rows[0].vendor == "Good"
        assert central.service.connected.is_set()  # still running
        client.loop_stop()
        client.disconnect()
    finally:
        central.stop()
