"""The delivery worker on a sensor store (real SQLite, real alert manager, real sockets and
files): rules apply from their creation, order per target, updates, enable/disable, a
target down then up, bounded overflow counted."""

from __future__ import annotations

import json

from otwatch.agent.store.forwarding import sensor_backend
from otwatch.alerts.lifecycle import Action
from otwatch.forwarding.repository import add_rule, list_rules, parse_rule_spec, set_enabled
from otwatch.forwarding.worker import ForwarderOptions
from tests.forwarding.parsers import parse_cef, parse_rfc5424
from tests.forwarding.running import FAST, TcpSyslogReceiver, run_forwarder
from tests.forwarding.samples import manager, raise_alert


def _add(backend, name: str, target: dict, **rule) -> int:
    with backend.store.session() as session:
        return add_rule(
            session, backend, parse_rule_spec({"name": name, "targets": [target], **rule}), "tester"
        )


def _counters(backend) -> dict:
    with backend.store.session() as session:
        return list_rules(session, backend)[0]["targets"][0]


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_new_alerts_after_the_rule_in_order_with_updates(store, tmp_path):
    backend = sensor_backend(store)
    mgr = manager(store)
    raise_alert(mgr, 0)
    mgr.flush()  # raised before the rule: never forwarded
    out = tmp_path / "alerts.json"
    _add(backend, "all", {"kind": "file", "path": str(out)}, updates=True)
    for n in range(1, 51):
        raise_alert(mgr, n)
    mgr.flush()
    first_new = sorted(mgr.stats.created)[1]
    mgr.apply([first_new], Action.SET_STATUS, actor="ana", value="closed")
    mgr.apply([first_new + 1], Action.SET_SEVERITY, actor="ana", value="high")
    run_forwarder(backend, lambda: len(_lines(out)) >= 52)
    docs = _lines(out)
    assert len(docs) == 52
    ids = [d["otwatch"]["alert"]["id"] for d in docs[:50]]
    assert ids == sorted(ids) and 1 not in ids and len(set(ids)) == 50
    assert [d["event"]["action"] for d in docs[50:]] == ["closed", "severity"]
    closed = docs[50]
    assert closed["otwatch"]["change"]["before"]["status"] == "new"
    assert closed["otwatch"]["change"]["actor"] == "ana"
    assert len({d["event"]["id"] for d in docs}) == 52
    assert _counters(backend)["sent"] == 52


def test_without_updates_only_new_alerts_and_filters_apply(store, tmp_path):
    backend = sensor_backend(store)
    mgr = manager(store)
    out = tmp_path / "high.json"
    _add(backend, "high only", {"kind": "file", "path": str(out)}, filters={"min_severity": "high"})
    all_out = tmp_path / "all.json"
    _add(backend, "all", {"kind": "file", "path": str(all_out)})
    for n in range(10):
        raise_alert(mgr, n)  # medium
    raise_alert(mgr, 99, type_id="port_scan_detected", protocol="tcp")  # high
    mgr.flush()
    mgr.apply([min(mgr.stats.created)], Action.SET_STATUS, actor="ana", value="closed")
    run_forwarder(backend, lambda: len(_lines(all_out)) >= 11 and len(_lines(out)) >= 1)
    assert len(_lines(all_out)) == 11
    assert [d["rule"]["id"] for d in _lines(out)] == ["port_scan_detected"]
    assert all(d["event"]["action"] == "new" for d in _lines(all_out))


def test_a_disabled_rule_forwards_nothing_and_resumes_from_enable(store, tmp_path):
    backend = sensor_backend(store)
    mgr = manager(store)
    out = tmp_path / "a.json"
    _add(backend, "r", {"kind": "file", "path": str(out)})
    with store.session() as session:
        set_enabled(session, backend, "r", False, "tester")
    raise_alert(mgr, 1)
    mgr.flush()
    run_forwarder(backend, lambda: True)
    with store.session() as session:
        set_enabled(session, backend, "r", True, "tester")
    raise_alert(mgr, 2)
    mgr.flush()
    run_forwarder(backend, lambda: len(_lines(out)) >= 1)
    assert [d["source"]["ip"] for d in _lines(out)] == ["192.0.2.3"]


def test_target_down_then_up_delivers_everything_once_in_order(store):
    backend = sensor_backend(store)
    mgr = manager(store)
    receiver = TcpSyslogReceiver()
    receiver.start()
    port = receiver.port
    receiver.stop()  # down: connection refused until it comes back
    _add(
        backend,
        "tcp",
        {"kind": "syslog", "host": "127.0.0.1", "port": port, "transport": "tcp", "format": "cef"},
    )
    for n in range(300):
        raise_alert(mgr, n)
    mgr.flush()
    up = TcpSyslogReceiver(port)

    def bring_up(elapsed: float) -> None:
        if elapsed > 0.5 and up._sock is None:
            up.start()

    try:
        run_forwarder(backend, lambda: len(up.messages) >= 300, during=bring_up)
    finally:
        up.stop()
    counters = _counters(backend)
    assert counters["failed"] >= 1 and "connection refused" in counters["last_error"]
    assert counters["sent"] == 300
    messages = [parse_rfc5424(m.decode()) for m in up.messages]
    alert_ids = [int(m.sd["otwatch@32473"]["alertId"]) for m in messages]
    assert alert_ids == sorted(alert_ids) and len(set(alert_ids)) == 300
    assert all(parse_cef(m.msg).ext["cs1"] == "s1" for m in messages)


def test_overflow_while_down_is_bounded_and_counted(store):
    backend = sensor_backend(store)
    mgr = manager(store)
    receiver = TcpSyslogReceiver()
    receiver.start()
    port = receiver.port
    receiver.stop()
    _add(
        backend,
        "tcp",
        {"kind": "syslog", "host": "127.0.0.1", "port": port, "transport": "tcp", "format": "leef"},
    )
    for n in range(500):
        raise_alert(mgr, n)
    mgr.flush()
    options = ForwarderOptions(**{**FAST.__dict__, "max_queue": 100, "batch": 50})
    run_forwarder(backend, lambda: _counters(backend)["dropped"] > 0, options=options)
    up = TcpSyslogReceiver(port)
    up.start()
    try:
        run_forwarder(
            backend,
            lambda: _counters(backend)["sent"] + _counters(backend)["dropped"] >= 500,
            options=options,
        )
    finally:
        up.stop()
    counters = _counters(backend)
    assert counters["dropped"] == 400 and counters["sent"] == 100
    assert len(up.messages) == 100
    ids = [int(parse_rfc5424(m.decode()).sd["otwatch@32473"]["alertId"]) for m in up.messages]
    assert ids == sorted(ids) and ids[0] > 400  # the newest were kept


def test_status_and_metrics_show_queue_sent_failed_dropped(store, tmp_path):
    from click.testing import CliRunner

    from otwatch.cli.main import cli
    from otwatch.metrics import SensorCollector

    backend = sensor_backend(store)
    mgr = manager(store)
    _add(backend, "soc", {"kind": "syslog", "host": "127.0.0.1", "port": 9, "transport": "tcp"})
    for n in range(5):
        raise_alert(mgr, n)
    mgr.flush()
    run_forwarder(backend, lambda: _counters(backend)["failed"] >= 2)
    result = CliRunner().invoke(cli, ["--data-dir", str(store.data_dir), "status"])
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.output.splitlines() if x.startswith("forward")]
    assert "soc → syslog tcp://127.0.0.1:9 (cef): 5 waiting, 0 sent" in line
    assert "connection refused" in line
    families = {f.name: f for f in SensorCollector(store, "agent").collect()}
    [queue] = families["otwatch_forwarding_queue_depth"].samples
    assert queue.value == 5 and queue.labels["rule"] == "soc"
    failed = families["otwatch_forwarding_failed"].samples[0]
    assert failed.value >= 2


def test_file_target_rotates_by_size_and_keeps_every_line(store, tmp_path):
    backend = sensor_backend(store)
    mgr = manager(store)
    out = tmp_path / "alerts.ndjson"
    _add(backend, "file", {"kind": "file", "path": str(out), "max_bytes": 20_000, "keep": 50})
    for n in range(60):
        raise_alert(mgr, n)
    mgr.flush()
    run_forwarder(backend, lambda: _counters(backend)["sent"] >= 60)
    files = sorted(
        tmp_path.glob("alerts.ndjson*"),
        key=lambda p: -int(p.suffix[1:] or 0) if p.suffix[1:].isdigit() else 0,
    )
    assert len(files) > 1 and all(f.stat().st_size <= 20_000 for f in files)
    docs = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    ids = [d["otwatch"]["alert"]["id"] for d in docs]
    assert ids == sorted(ids) and len(set(ids)) == 60


def test_cli_on_a_sensor_add_from_file_show_list_remove(store, tmp_path):
    from click.testing import CliRunner

    from otwatch.cli.main import cli

    spec = tmp_path / "rule.json"
    spec.write_text(
        json.dumps(
            {
                "name": "ecs",
                "filters": {"protocols": ["modbus"]},
                "targets": [{"kind": "file", "path": str(tmp_path / "o.json")}],
            }
        )
    )

    def run(*args):
        result = CliRunner().invoke(cli, ["--data-dir", str(store.data_dir), "forwarding", *args])
        return result.exit_code, result.output

    assert run("add", "--from-file", str(spec)) == (0, "forwarding rule 1 'ecs' added\n")
    code, out = run("list")
    assert code == 0 and "ecs" in out and "protocols=modbus" in out and "file " in out
    code, out = run("test", "ecs")
    assert code == 0 and out.startswith("ok: file ")
    [doc] = [json.loads(x) for x in (tmp_path / "o.json").read_text().splitlines()]
    assert doc["event"]["action"] == "test" and doc["observer"]["name"]
    spec.write_text('{"name": "bad", "targets": [{"kind": "smtp"}]}')
    code, out = run("add", "--from-file", str(spec))
    assert code == 1 and "invalid forwarding rule" in out
    assert run("remove", "1")[0] == 0
