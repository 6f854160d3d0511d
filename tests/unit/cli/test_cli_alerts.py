"""`otwatch alerts …` and `otwatch catalog …` through click's runner on a real store."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.store.devices_query import DEVICE_REF_KEYS
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.views import ALERT_KEYS, CSV_COLUMNS
from otwatch.cli.main import cli
from otwatch.timeutil import format_iso
from tests.factories import T0, detection

HOUR = 3600 * 1_000_000_000


@pytest.fixture
def seeded(store):
    """Three alerts: two Modbus policy alerts from different sources, one exception."""
    manager = AlertManager(store, load_catalog(), sensor_id="s1", site="north", zone="z1")
    manager.observe(detection(src="192.0.2.1", ts_ns=T0, function_code=16))
    manager.observe(detection(src="192.0.2.1", ts_ns=T0 + HOUR))
    manager.observe(detection(src="192.0.2.2", ts_ns=T0 + 2 * HOUR))
    manager.observe(
        detection(
            "modbus_exception",
            src="198.51.100.20",
            dst="192.0.2.1",
            ts_ns=T0 + 3 * HOUR,
            exception_code=2,
        )
    )
    manager.flush()
    return store.data_dir


def invoke(data_dir, *args: str):
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)
    return result


def as_json(data_dir, *args: str):
    result = invoke(data_dir, *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_list_json_has_the_contract_keys_and_newest_first(seeded):
    rows = as_json(seeded, "alerts", "list")
    assert [tuple(r) for r in rows] == [(*ALERT_KEYS, *DEVICE_REF_KEYS)] * 3
    assert [r["last_detection"] for r in rows] == sorted(
        (r["last_detection"] for r in rows), reverse=True
    )
    first = rows[-1]
    assert first["detections"] == 2
    assert first["engine"] == "policy_violation" and first["status"] == "new"
    assert first["first_detection"].endswith("Z") and first["severity"] == "medium"
    assert (first["sensor"], first["site"], first["zone"]) == ("s1", "north", "z1")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--engine", "protocol_violation"], 1),
        (["--engine", "policy_violation,protocol_violation"], 3),
        (["--status", "closed"], 0),
        (["--severity", "medium"], 3),
        (["--search", "192.0.2.2"], 1),
        (["--search", "100%"], 0),
        (["--source", "198.51.100.20"], 1),
        (["--protocol", "modbus", "--site", "north", "--sensor", "s1"], 3),
        (["--category", "Illegal commands"], 1),
        (["--since", format_iso(T0 + HOUR + HOUR // 2)], 2),
        (["--until", format_iso(T0 + HOUR // 2)], 1),
    ],
)
def test_filters(seeded, args, expected):
    assert len(as_json(seeded, "alerts", "list", *args)) == expected


def test_group_by_counts(seeded):
    rows = as_json(seeded, "alerts", "list", "--group-by", "name")
    assert rows == [
        {"name": "Unpermitted Usage of Modbus Function Code", "count": 2},
        {"name": "Modbus Exception", "count": 1},
    ]
    assert as_json(seeded, "alerts", "list", "--group-by", "engine", "--status", "new") == [
        {"engine": "policy_violation", "count": 2},
        {"engine": "protocol_violation", "count": 1},
    ]


def test_sort_and_table_output(seeded):
    rows = as_json(seeded, "alerts", "list", "--sort", "detections")
    assert [r["detections"] for r in rows] == [1, 1, 2]
    table = invoke(seeded, "alerts", "list").output
    assert table.splitlines()[0].split()[:4] == ["ID", "SEVERITY", "STATUS", "NAME"]
    bad = invoke(seeded, "alerts", "list", "--sort", "colour")
    assert bad.exit_code == 1 and "cannot sort by 'colour'" in bad.output


def test_csv_format_and_export(seeded, tmp_path):
    out = tmp_path / "alerts.csv"
    result = invoke(seeded, "alerts", "export", "-o", str(out), "--engine", "policy_violation")
    assert result.exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 and tuple(rows[0]) == CSV_COLUMNS
    listing = invoke(seeded, "alerts", "list", "--format", "csv").output
    assert len(list(csv.DictReader(io.StringIO(listing)))) == 3


def test_show_includes_remediation_and_history(seeded):
    invoke(seeded, "alerts", "comment", "1", "called the integrator")
    data = as_json(seeded, "alerts", "show", "1")
    assert data["remediation"] and all(isinstance(step, str) for step in data["remediation"])
    assert [e["action"] for e in data["audit"]] == ["created", "comment"]
    assert data["audit"][1]["detail"]["text"] == "called the integrator"
    assert data["parameters"] == {"function_code": 16}
    text = invoke(seeded, "alerts", "show", "1").output
    assert "Take action:" in text and "History:" in text


def test_bulk_status_reports_per_id_and_exits_nonzero_on_any_failure(seeded):
    result = invoke(seeded, "alerts", "set-status", "active", "1", "2", "77", "--format", "json")
    assert result.exit_code == 1 and "1 of 3 alert(s) not changed" in result.stderr
    outcomes = json.loads(result.stdout)
    assert [(r["alert_id"], r["outcome"]) for r in outcomes] == [
        (1, "applied"),
        (2, "applied"),
        (77, "not_found"),
    ]
    assert len(as_json(seeded, "alerts", "list", "--status", "active")) == 2
    ok = invoke(seeded, "alerts", "set-severity", "high", "1")
    assert ok.exit_code == 0 and "severity is now high" in ok.output


def test_bulk_text_output_has_one_error_line_per_failed_id(seeded):
    result = invoke(seeded, "alerts", "set-status", "closed", "1", "77", "78")
    assert result.exit_code == 1
    assert "applied: alert 1 is now closed" in result.stdout
    failures = result.stderr.lower().splitlines()
    assert failures == ["error: alert 77 does not exist", "error: alert 78 does not exist"]


def test_learn_unlearn_mute_unmute_cycle(seeded):
    assert invoke(seeded, "alerts", "learn", "1").exit_code == 0
    assert as_json(seeded, "alerts", "show", "1")["close_reason"] == "learned"
    assert invoke(seeded, "alerts", "unlearn", "1").exit_code == 0
    assert as_json(seeded, "alerts", "show", "1")["status"] == "new"
    assert invoke(seeded, "alerts", "mute", "3").exit_code == 0
    assert as_json(seeded, "alerts", "show", "3")["close_reason"] == "muted"
    assert invoke(seeded, "alerts", "unmute", "3").exit_code == 0
    refused = invoke(seeded, "alerts", "mute", "1")
    assert refused.exit_code == 1


def test_catalog_list_marks_implemented_detectors():
    rows = json.loads(CliRunner().invoke(cli, ["catalog", "list", "--format", "json"]).output)
    assert len(rows) == 202
    implemented = {r["id"] for r in rows if r["implemented"]}
    assert {"new_asset_detected", "port_scan_detected", "modbus_exception"} <= implemented
    assert any(not r["implemented"] for r in rows)
    shown = CliRunner().invoke(cli, ["catalog", "show", "nope"])
    assert shown.exit_code == 1 and "unknown alert type 'nope'" in shown.output
