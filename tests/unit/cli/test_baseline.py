"""`otwatch baseline …` through click's runner on real stores: learning mode, listing, and
an export → import round trip."""

from __future__ import annotations

import json

from click.testing import CliRunner

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.store.baseline import load_learning_ns
from otwatch.agent.store.db import open_store
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.lifecycle import Action
from otwatch.cli.main import cli
from tests.factories import detection, ether_frames, modbus_request, run_pipeline

A, B = "192.0.2.10", "198.51.100.20"


def invoke(data_dir, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)


def ok(data_dir, *args: str) -> str:
    result = invoke(data_dir, *args)
    assert result.exit_code == 0, result.output
    return result.output


def test_start_status_stop(store):
    d = store.data_dir
    assert "learning mode on for 2.0h" in ok(d, "baseline", "start", "--period", "2h")
    with store.session() as session:
        assert load_learning_ns(session) == 7200 * 10**9
    status = json.loads(ok(d, "baseline", "status", "--format", "json"))
    assert status["learning"] and status["learning_remaining_s"] == 7200
    assert "learning mode off" in ok(d, "baseline", "stop")
    assert "already off" in ok(d, "baseline", "stop")
    bad = invoke(d, "baseline", "start", "--period", "soon")
    assert bad.exit_code == 2 and "'--period'" in bad.output


def seeded(store):
    """A learned baseline (devices, Modbus function codes) and one learned alert."""
    polls = [modbus_request(A, B, 3, tid=i) for i in range(5)]
    run_pipeline(store, ether_frames(polls), learning_period_ns=10**12)
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    manager.observe(detection(src=A, dst="198.51.100.99", function_code=16))
    manager.flush()
    [result] = manager.apply([1], Action.LEARN, actor="ana")
    assert result.outcome == "applied"


def test_list_shows_facts_and_learned_alerts(store):
    seeded(store)
    rows = json.loads(ok(store.data_dir, "baseline", "list", "--format", "json"))
    kinds = {r["kind"] for r in rows}
    assert {"device", "modbus_fc", "learned_alert"} <= kinds
    learned = json.loads(
        ok(store.data_dir, "baseline", "list", "--kind", "learned_alert", "--format", "json")
    )
    assert [r["attrs"]["type_id"] for r in learned] == ["unpermitted_usage_of_modbus_function_code"]
    devices = json.loads(
        ok(store.data_dir, "baseline", "list", "--kind", "device", "--format", "json")
    )
    assert {r["key"] for r in devices} >= {A}


def test_export_import_round_trip(store, tmp_path):
    seeded(store)
    exported = tmp_path / "baseline.json"
    assert "exported" in invoke(store.data_dir, "baseline", "export", "-o", str(exported)).output
    other = open_store(tmp_path / "other")
    try:
        out = ok(other.data_dir, "baseline", "import", str(exported))
        assert "new learned alert rules" in out
        again = tmp_path / "again.json"
        ok(other.data_dir, "baseline", "export", "-o", str(again))
        first, second = json.loads(exported.read_text()), json.loads(again.read_text())
        assert {(f["kind"], f["key"]) for f in first["facts"]} == {
            (f["kind"], f["key"]) for f in second["facts"]
        }
        assert [(r["type_id"], r["key_fields"]) for r in first["learn_rules"]] == [
            (r["type_id"], r["key_fields"]) for r in second["learn_rules"]
        ]
        assert "imported 0 new facts" in ok(other.data_dir, "baseline", "import", str(exported))
        # the imported learn rule suppresses the same traffic on the other sensor
        manager = AlertManager(other, load_catalog(), sensor_id="s2")
        manager.observe(detection(src=A, dst="198.51.100.99", function_code=16))
        assert manager.stats.learned == 1
    finally:
        other.close()


def test_import_errors_name_the_file_and_entry(store, tmp_path):
    cases = {
        "bad.json": ("{not json", "invalid JSON (line 1)"),
        "other.json": (json.dumps({"format": "x"}), "not a baseline export"),
        "fact.json": (
            json.dumps({"format": "otwatch-baseline", "version": 1, "facts": [{"kind": "device"}]}),
            "facts[0]: missing 'key'",
        ),
        "rule.json": (
            json.dumps(
                {
                    "format": "otwatch-baseline",
                    "version": 1,
                    "learn_rules": [{"type_id": "modbus_exception", "key_fields": {}}],
                }
            ),
            "cannot be learned",
        ),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        result = invoke(store.data_dir, "baseline", "import", str(path))
        assert result.exit_code == 1, result.output
        assert name in result.output and message in result.output
