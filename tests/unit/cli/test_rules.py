"""`otwatch rules …` through click's runner on a real store: custom rule CRUD, triggering,
exclusions, validation errors naming the bad field."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.pipeline import Pipeline
from otwatch.agent.store.models import Alert, AuditEvent
from otwatch.alerts.catalog import load_catalog
from otwatch.cli.main import cli
from tests.factories import T0, arp_request, ether_frames, modbus_request

A, B = "192.0.2.10", "198.51.100.20"
USER_RULE = "unauthorized_operation_was_detected_by_a_user_defined_rule"
WRITE = [
    "rules",
    "custom",
    "add",
    "--name",
    "Writes to PLC",
    "--protocol",
    "modbus",
    "--source",
    "192.0.2.0/24",
    "--condition",
    "modbus.function_code in 5,6,15,16",
    "--severity",
    "high",
    "--message",
    "{source_address} wrote fc {modbus.function_code}",
]


def invoke(data_dir, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)


def ok(data_dir, *args: str) -> str:
    result = invoke(data_dir, *args)
    assert result.exit_code == 0, result.output
    return result.output


def replay(store, frames):
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    pipeline = Pipeline(manager, learning_period_ns=0)
    for frame in frames:
        pipeline.process(*frame)
    pipeline.flush()
    return pipeline, manager


def alerts(store) -> list[Alert]:
    with store.session() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def test_custom_rule_crud(store):
    d = store.data_dir
    assert "added custom rule 1: Writes to PLC" in ok(d, *WRITE)
    [row] = json.loads(ok(d, "rules", "custom", "list", "--format", "json"))
    assert (row["name"], row["enabled"], row["severity"]) == ("Writes to PLC", True, "high")
    assert row["conditions"] == ["modbus.function_code in 5,6,15,16"]
    assert "disabled" in ok(d, "rules", "custom", "disable", "Writes to PLC")
    assert "already disabled" in ok(d, "rules", "custom", "disable", "1")
    assert json.loads(ok(d, "rules", "custom", "list", "--format", "json"))[0]["enabled"] is False
    assert "enabled" in ok(d, "rules", "custom", "enable", "1")
    duplicate = invoke(d, *WRITE)
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    assert "deleted custom rule 1" in ok(d, "rules", "custom", "delete", "1")
    assert ok(d, "rules", "custom", "list").strip() == "(none)"
    missing = invoke(d, "rules", "custom", "delete", "nope")
    assert missing.exit_code == 1 and "no custom rule with id or name 'nope'" in missing.output
    with store.session() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions == [
        "custom_rule_added",
        "custom_rule_disabled",
        "custom_rule_enabled",
        "custom_rule_deleted",
    ]


def test_validation_errors_name_the_option(store):
    d = store.data_dir
    cases = [
        (["--condition", "modbus.fc == 5"], "'--condition'", "unknown field 'modbus.fc'"),
        (["--condition", "dst_port == five"], "'--condition'", "not a number"),
        (["--condition", "dst_port == 1", "--source", "10.0.0.999"], "'--source'", "not an IP"),
        (["--condition", "dst_port == 1", "--protocol", "gopher"], "'--protocol'", "gopher"),
        (["--condition", "dst_port == 1", "--time", "8-17"], "'--time'", "HH:MM-HH:MM"),
        (["--condition", "dst_port == 1", "--message", "{who}"], "'--message'", "who"),
    ]
    for extra, option, text in cases:
        result = invoke(d, "rules", "custom", "add", "--name", "r", *extra)
        assert result.exit_code == 2, result.output
        assert option in result.output and text in result.output


def test_rule_added_by_the_cli_triggers_with_its_title_and_severity(store):
    ok(store.data_dir, *WRITE)
    ok(
        store.data_dir,
        "rules",
        "custom",
        "add",
        "--name",
        "Reads",
        "--action",
        "event",
        "--condition",
        "modbus.function_code == 3",
    )
    replay(
        store,
        ether_frames(
            [modbus_request(A, B, 6), modbus_request(A, B, 3), modbus_request("203.0.113.5", B, 6)]
        ),
    )
    [alert] = [a for a in alerts(store) if a.type_id == USER_RULE]
    assert alert.fields["rule_name"] == "Writes to PLC"
    assert alert.severity == "high" and alert.message == f"{A} wrote fc 6"
    assert alert.source_address == A
    events = json.loads(ok(store.data_dir, "rules", "custom", "events", "--format", "json"))
    assert [(e["rule"], e["source_address"]) for e in events] == [("Reads", A)]


def test_rule_changes_reach_a_running_pipeline(store):
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    pipeline = Pipeline(manager, learning_period_ns=0)
    ok(store.data_dir, *WRITE)
    pipeline.flush()
    for frame in ether_frames([modbus_request(A, B, 16)]):
        pipeline.process(*frame)
    pipeline.flush()
    assert [a.fields.get("rule_name") for a in alerts(store) if a.type_id == USER_RULE] == [
        "Writes to PLC"
    ]


def test_exclusion_rules_suppress_and_can_be_deleted(store):
    d = store.data_dir
    ok(d, *WRITE)
    ok(
        d,
        "rules",
        "exclusion",
        "add",
        "--ticket",
        "CHG-42",
        "--start",
        "2026-01-01",
        "--ttl",
        "365d",
        "--mac",
        "02:00:00:00:00:01",
        "--direction",
        "source",
        "--engine",
        "policy_violation",
    )
    ok(
        d,
        "rules",
        "exclusion",
        "add",
        "--name",
        "arp noise",
        "--type",
        "arp_address_scan_detected",
        "--subnet",
        "192.0.2.0/24",
        "--start",
        "2020-01-01T00:00:00Z",
    )
    [first, second] = json.loads(ok(d, "rules", "exclusion", "list", "--format", "json"))
    assert (first["name"], first["ticket_id"], first["macs"]) == (
        "Maintenance-CHG-42",
        "CHG-42",
        ["02:00:00:00:00:01"],
    )
    assert second["alert_types"] == ["arp_address_scan_detected"]
    # the modbus frames come from MAC 02:00:00:00:00:01; the ARP sweep from 192.0.2.10
    frames = [modbus_request(A, B, 6)] + [arp_request(A, f"192.0.2.{i}") for i in range(100, 141)]
    _, manager = replay(store, ether_frames(frames))
    assert manager.stats.excluded >= 2
    assert {a.type_id for a in alerts(store)} & {USER_RULE, "arp_address_scan_detected"} == set()
    ok(d, "rules", "exclusion", "delete", "Maintenance-CHG-42")
    replay(store, ether_frames([modbus_request(A, B, 6)], start_ns=T0 + 10**12))
    assert USER_RULE in {a.type_id for a in alerts(store)}


def test_exclusion_validation(store):
    d = store.data_dir
    cases = [
        ([], "'--name'", "give a name"),
        (["--name", "x", "--subnet", "300.1.1.0/24"], "'--subnet'", "not an IP"),
        (["--name", "x", "--mac", "02:00"], "'--mac'", "not a MAC"),
        (["--name", "x", "--type", "no_such_type"], "'--type'", "unknown alert type"),
        (["--name", "x", "--engine", "magic"], "'--engine'", "choose from"),
        (["--name", "x", "--ttl", "soon"], "'--ttl'", "invalid duration"),
        (["--name", "x", "--start", "2030-01-01", "--end", "2029-01-01"], "'--end'", "after"),
        (["--name", 'a"b'], "'--name'", "double quote"),
    ]
    for args, option, text in cases:
        result = invoke(d, "rules", "exclusion", "add", *args)
        assert result.exit_code == 2, result.output
        assert option in result.output and text in result.output
    ok(d, "rules", "exclusion", "add", "--name", "x")
    again = invoke(d, "rules", "exclusion", "add", "--name", "x")
    assert again.exit_code == 1 and "already exists" in again.output
