"""The delivery worker on central's store (SQLite and PostgreSQL): new alerts by central's
alert id, changes from the audit log after their alert, rules from their creation on,
sensor/site filters; the CLI with ``--db`` and the admin API."""

from __future__ import annotations

import json
import uuid

from click.testing import CliRunner

from otwatch.central.store import alerts as alert_store
from otwatch.central.store.forwarding import central_backend
from otwatch.cli.main import cli
from otwatch.forwarding.repository import add_rule, list_rules, parse_rule_spec
from tests.centralapi import add_alerts, snapshot
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.factories import T0
from tests.forwarding.running import run_forwarder


def _lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _close(store, sensor: str, alert_id: int) -> None:
    """What ingest writes for a sensor's closure: the merged alert and its audit row."""
    with store.session() as s:
        row = snapshot(alert_id, status="closed", close_reason="manual", status_hlc=5)
        alert_store.upsert_alerts(s, [alert_store.alert_row(sensor, row, T0)])
        alert_store.add_audit(
            s,
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "sensor": sensor,
                    "alert_id": alert_id,
                    "ts_ns": T0 + 1,
                    "actor": "ana",
                    "origin": "sensor",
                    "action": "status",
                    "detail": {
                        "before": {"status": "new", "close_reason": None, "severity": "medium"},
                        "after": {
                            "status": "closed",
                            "close_reason": "manual",
                            "severity": "medium",
                        },
                        "hlc": 5,
                    },
                }
            ],
        )


def test_central_forwards_new_alerts_then_changes_per_rule(central_store, tmp_path):  # noqa: F811
    backend = central_backend(central_store)
    add_alerts(central_store, "s1", [snapshot(1)])  # before the rule: not forwarded
    out, north = tmp_path / "all.json", tmp_path / "s2.json"
    with central_store.session() as s:
        add_rule(
            s,
            backend,
            parse_rule_spec(
                {"name": "all", "updates": True, "targets": [{"kind": "file", "path": str(out)}]}
            ),
            "tester",
        )
        add_rule(
            s,
            backend,
            parse_rule_spec(
                {
                    "name": "s2 only",
                    "filters": {"sensors": ["s2"]},
                    "targets": [{"kind": "file", "path": str(north)}],
                }
            ),
            "tester",
        )
    add_alerts(central_store, "s1", [snapshot(n) for n in range(2, 12)])
    add_alerts(central_store, "s2", [snapshot(n) for n in range(1, 4)])
    _close(central_store, "s1", 3)
    _close(central_store, "s1", 1)  # its alert predates the rule: not forwarded
    run_forwarder(backend, lambda: len(_lines(out)) >= 14 and len(_lines(north)) >= 3)
    docs = _lines(out)
    assert len(docs) == 14
    assert [d["otwatch"]["alert"]["id"] for d in docs[:13]] == (
        [f"{n}-s1" for n in range(2, 12)] + [f"{n}-s2" for n in range(1, 4)]
    )
    assert docs[13]["event"]["action"] == "closed"
    assert docs[13]["otwatch"]["alert"]["id"] == "3-s1"
    assert docs[13]["observer"]["name"] == "s1"
    assert [d["otwatch"]["alert"]["id"] for d in _lines(north)] == ["1-s2", "2-s2", "3-s2"]
    with central_store.session() as s:
        sent = {r["name"]: r["targets"][0]["sent"] for r in list_rules(s, backend)}
    assert sent == {"all": 14, "s2 only": 3}


def test_cli_manages_central_rules_and_never_echoes_header_values(central_url, tmp_path):  # noqa: F811
    runner = CliRunner()
    token = tmp_path / "token"
    token.write_text("Bearer abc")

    def run(*args):
        result = runner.invoke(cli, ["forwarding", *args, "--db", central_url])
        return result.exit_code, result.output

    code, out = run(
        "add",
        "soc",
        "--min-severity",
        "high",
        "--engine",
        "malware,anomaly",
        "--webhook",
        "https://127.0.0.1:9/x",
        "--header",
        "X-Api-Key: s3cr3t",
        "--header",
        f"Authorization: @{token}",
        "--batch",
        "10",
    )
    assert code == 0, out
    code, out = run("show", "soc", "--format", "json")
    shown = json.loads(out)
    assert shown["filters"] == {"min_severity": "high", "engines": ["malware", "anomaly"]}
    headers = shown["targets"][0]["settings"]["headers"]
    assert headers == {"X-Api-Key": "(set)", "Authorization": f"@{token}"}
    assert "s3cr3t" not in out and "Bearer abc" not in out
    code, out = run("test", "soc")
    assert code == 1 and "webhook https://127.0.0.1:9/x: connection refused" in out
    assert run("disable", "soc")[0] == 0
    code, out = run("list", "--format", "json")
    assert json.loads(out)[0]["enabled"] is False
    code, out = run("add", "soc", "--syslog", "udp://127.0.0.1:9")
    assert code == 1 and "exists already" in out
    assert run("remove", "soc") == (0, "forwarding rule 'soc' removed\n")
    code, out = run("show", "soc")
    assert code == 1 and "no forwarding rule 'soc'" in out


def test_central_overflow_keeps_the_newest_and_counts_the_rest(central_store, tmp_path):  # noqa: F811
    import dataclasses

    from tests.forwarding.running import FAST, TcpSyslogReceiver

    backend = central_backend(central_store)
    receiver = TcpSyslogReceiver()
    receiver.start()
    port = receiver.port
    receiver.stop()
    with central_store.session() as s:
        target = {"kind": "syslog", "host": "127.0.0.1", "port": port, "transport": "tcp"}
        add_rule(s, backend, parse_rule_spec({"name": "down", "targets": [target]}), "tester")
    add_alerts(central_store, "s1", [snapshot(n) for n in range(1, 301)])

    def counters():
        with central_store.session() as s:
            return list_rules(s, backend)[0]["targets"][0]

    options = dataclasses.replace(FAST, max_queue=100, batch=40)
    run_forwarder(backend, lambda: counters()["dropped"] > 0, options=options)
    up = TcpSyslogReceiver(port)
    up.start()
    try:
        run_forwarder(backend, lambda: counters()["sent"] >= 100, options=options)
    finally:
        up.stop()
    assert (counters()["sent"], counters()["dropped"]) == (100, 200)
    ids = [m.split(b'alertId="')[1].split(b'"')[0].decode() for m in up.messages]
    assert ids == [f"{n}-s1" for n in range(201, 301)]
