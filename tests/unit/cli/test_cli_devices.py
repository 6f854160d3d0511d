"""``otwatch devices``: list with filters and groups, show, set (overrides win), export, forget."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from otwatch.agent.replay import replay
from otwatch.agent.store.db import open_store
from otwatch.cli.main import cli
from otwatch.simulate.plant import PlantProfile, write_plant_capture


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    path = tmp_path_factory.mktemp("plant") / "plant.pcap"
    write_plant_capture(path, PlantProfile(learning_s=20, attack_s=20, engineering=True))
    return path


@pytest.fixture
def data_dir(plant, tmp_path):
    store = open_store(tmp_path / "data")
    try:
        replay([plant], store, learning_period_ns=10 * 10**9)
    finally:
        store.close()
    return tmp_path / "data"


def run(data_dir, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args])
    assert (result.exit_code == 0) is ok, result.output
    return result.output


def test_list_filters_and_groups(data_dir) -> None:
    rows = json.loads(run(data_dir, "devices", "list", "--format", "json"))
    assert {r["ip"] for r in rows} >= {"192.0.2.10", "192.0.2.20", "192.0.2.30", "192.0.2.66"}
    plcs = json.loads(run(data_dir, "devices", "list", "--type", "PLC", "--format", "json"))
    assert {r["ip"] for r in plcs} == {"192.0.2.20", "192.0.2.21", "192.0.2.22"}
    s7 = json.loads(run(data_dir, "devices", "list", "--protocol", "s7comm", "--subnet",
                        "192.0.2.16/29", "--format", "json"))  # fmt: skip
    assert [r["ip"] for r in s7] == ["192.0.2.20"]
    new = json.loads(run(data_dir, "devices", "list", "--new", "--format", "json"))
    assert "192.0.2.66" in {r["ip"] for r in new} and "192.0.2.20" not in {r["ip"] for r in new}
    groups = json.loads(run(data_dir, "devices", "list", "--group-by", "type", "--format", "json"))
    assert {"type": "PLC", "devices": 3} in groups
    assert "not a subnet" in run(data_dir, "devices", "list", "--subnet", "nope", ok=False)


def test_show_set_export_forget(data_dir) -> None:
    shown = json.loads(run(data_dir, "devices", "show", "02:00:c0:00:02:14", "--format", "json"))
    assert shown["ip"] == "192.0.2.20" and "server:tcp/502/modbus" in shown["services"]
    assert any(a["name"] == "Unauthorized PLC Program Upload" for a in shown["recent_alerts"])
    assert "serves" in run(data_dir, "devices", "show", "192.0.2.20")
    run(data_dir, "devices", "set", "192.0.2.20", "--name", "=HYPERLINK(\"x\")", "--type",
        "RTU/outstation", "--purdue", "0")  # fmt: skip
    shown = json.loads(run(data_dir, "devices", "show", "192.0.2.20", "--format", "json"))
    assert (shown["name"], shown["type"], shown["purdue_level"]) == (
        '=HYPERLINK("x")',
        "RTU/outstation",
        0,
    )
    assert shown["type_reason"] == "set by a user"
    exported = list(csv.DictReader(io.StringIO(run(data_dir, "devices", "export", "--format",
                                                   "csv"))))  # fmt: skip
    assert any(r["ip"] == "192.0.2.20" for r in exported)
    run(data_dir, "devices", "set", "192.0.2.20", "--type", "")
    shown = json.loads(run(data_dir, "devices", "show", "192.0.2.20", "--format", "json"))
    assert shown["type"] == "PLC" and shown["name"] == '=HYPERLINK("x")'
    assert "forgot device 192.0.2.66" in run(data_dir, "devices", "forget", "192.0.2.66", "--yes")
    assert "no device" in run(data_dir, "devices", "show", "192.0.2.66", ok=False)


def test_alerts_name_their_devices(data_dir) -> None:
    run(data_dir, "devices", "set", "192.0.2.20", "--name", "Filler PLC")
    rows = json.loads(run(data_dir, "alerts", "list", "--format", "json"))
    upload = next(r for r in rows if r["name"] == "Unauthorized PLC Program Upload")
    assert upload["destination_device"] == "Filler PLC" and upload["destination_device_id"]
    assert upload["source_device"] == "192.0.2.30"  # no name known: the address
    assert "Filler PLC" in run(data_dir, "alerts", "list")
    shown = json.loads(run(data_dir, "alerts", "show", str(upload["id"]), "--format", "json"))
    assert shown["destination_device"] == "Filler PLC"
