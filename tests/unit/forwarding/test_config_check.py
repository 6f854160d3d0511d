"""``otwatch config check`` checks the forwarding rules in the store (a real sensor store,
and central's with ``--db``): one line per problem, exit 1 on an error, 0 with warnings
only. Rules that ``add`` accepts (a bad host, a made-up category) and rules changed in the
store behind its back (a format the target kind does not have) are both caught."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from otwatch.agent.store.db import open_store
from otwatch.agent.store.forwarding import sensor_backend
from otwatch.central.store.db import open_central_store
from otwatch.central.store.forwarding import central_backend
from otwatch.cli.main import cli
from otwatch.forwarding.repository import add_rule, parse_rule_spec

SYSLOG = {"kind": "syslog", "host": "siem.example", "port": 6514, "transport": "tcp"}


@pytest.fixture
def sensor(tmp_path):
    """(data dir, backend, config file) with an empty sensor store."""
    data = tmp_path / "data"
    store = open_store(data)
    config = tmp_path / "otwatch.toml"
    config.write_text('[sensor]\nid = "s1"\n')
    yield data, sensor_backend(store), config
    store.close()


def _add(backend, name: str, *targets: dict, **rule) -> None:
    with backend.store.session() as session:
        spec = parse_rule_spec({"name": name, "targets": list(targets), **rule})
        add_rule(session, backend, spec, "tester")


def _tamper(backend, name: str, position: int = 0, **settings) -> None:
    """Change what is stored behind ``add``'s back (an older version, a hand edit)."""
    b = backend
    with b.store.session() as session:
        rule_id = session.scalar(select(b.rule.id).where(b.rule.name == name))
        if "filters" in settings:
            filters = settings.pop("filters")
            session.execute(update(b.rule).where(b.rule.id == rule_id).values(filters=filters))
        if settings:
            target = session.scalar(
                select(b.target).where(b.target.rule_id == rule_id, b.target.position == position)
            )
            target.settings = {**target.settings, **settings}


def _check(data, config, *extra: str):
    result = CliRunner().invoke(
        cli, ["--data-dir", str(data), "--config", str(config), "config", "check", *extra]
    )
    lines = [line for line in result.stderr.splitlines() if "forwarding rule" in line]
    return result, lines


def test_valid_rules_pass(sensor, tmp_path):
    data, backend, config = sensor
    secret = tmp_path / "hmac.key"
    secret.write_text("k")
    secret.chmod(0o600)
    _add(backend, "siem", SYSLOG, filters={"engines": ["malware"], "min_severity": "high"})
    _add(
        backend,
        "hook",
        {"kind": "webhook", "url": "https://hooks.example:8443/x", "secret_file": str(secret)},
        {"kind": "file", "path": str(tmp_path / "alerts.ndjson")},
        filters={"categories": ["Firmware change"], "types": ["beckhoff_software_changed"]},
    )
    result, lines = _check(data, config)
    assert result.exit_code == 0, result.output
    assert lines == []
    assert result.stdout.splitlines()[-1] == f"ok: 2 forwarding rules in {data / 'otwatch.db'}"


def test_no_store_no_rules_nothing_said(tmp_path, sensor):
    _, _, config = sensor
    result, lines = _check(tmp_path / "nothing-here", config)
    assert result.exit_code == 0 and lines == []
    assert result.stdout == f"ok: {config} is valid\n"


@pytest.mark.parametrize(
    "target, words",
    [
        ({**SYSLOG, "host": "siem example"}, "host 'siem example' is not an IP address"),
        ({**SYSLOG, "host": "-bad-.example"}, "host '-bad-.example' is not an IP address"),
        ({"kind": "webhook", "url": "https://h.example:99999/x"}, "the port is not a number"),
        ({"kind": "webhook", "url": "https://bad_host!/x"}, "is not an IP address or a host name"),
        (
            {**SYSLOG, "transport": "tls", "ca_file": "/nonexistent/ca.pem"},
            "ca_file /nonexistent/ca.pem: no such file",
        ),
        (
            {"kind": "webhook", "url": "https://h.example/x", "secret_file": "/nonexistent/k"},
            "secret_file /nonexistent/k: no such file",
        ),
        (
            {"kind": "webhook", "url": "https://h.example/x", "headers": {"A": "@/nonexistent/t"}},
            "header A file /nonexistent/t: no such file",
        ),
        ({"kind": "file", "path": "/nonexistent-dir/a.ndjson"}, "does not exist"),
    ],
)
def test_each_target_error_is_one_line_and_exit_1(sensor, target, words):
    data, backend, config = sensor
    _add(backend, "bad", target)
    _add(backend, "good", SYSLOG)
    result, lines = _check(data, config)
    assert result.exit_code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: forwarding rule 'bad', target 1 (")
    assert words in lines[0]
    assert "ok: 2 forwarding rules" not in result.stdout


def test_a_directory_where_a_key_file_should_be(sensor, tmp_path):
    data, backend, config = sensor
    (tmp_path / "key").mkdir()
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    tls = {**SYSLOG, "transport": "tls", "cert_file": str(cert), "key_file": str(tmp_path / "key")}
    _add(backend, "tls", tls)
    result, lines = _check(data, config)
    assert result.exit_code == 1
    assert lines == [
        f"error: forwarding rule 'tls', target 1 (syslog tls://siem.example:6514 (cef)): "
        f"key_file {tmp_path / 'key'}: not a regular file"
    ]


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"format": "cef"}, "format: Extra inputs are not permitted"),  # a file has no format
        ({"max_bytes": 10}, "max_bytes: Input should be greater than or equal to 4096"),
        ({"kind": "kafka"}, "unknown target kind 'kafka'"),
    ],
)
def test_settings_the_schema_refuses(sensor, tmp_path, settings, words):
    data, backend, config = sensor
    _add(backend, "f", {"kind": "file", "path": str(tmp_path / "a.ndjson")})
    _tamper(backend, "f", **settings)
    result, lines = _check(data, config)
    assert result.exit_code == 1 and len(lines) == 1
    assert lines[0].startswith("error: forwarding rule 'f', target 1") and words in lines[0]


def test_a_syslog_format_that_does_not_exist(sensor):
    data, backend, config = sensor
    _add(backend, "s", SYSLOG)
    _tamper(backend, "s", format="ecs")
    result, lines = _check(data, config)
    assert result.exit_code == 1
    assert "format: Input should be 'text', 'cef', 'leef' or 'json'" in lines[0]


@pytest.mark.parametrize(
    "filters, words",
    [
        ({"engines": ["malware", "telepathy"]}, "engines: no engine 'telepathy'"),
        ({"categories": ["No Such Group"]}, "categories: no category 'No Such Group'"),
        ({"types": ["made_up_alert"]}, "types: no alert type 'made_up_alert'"),
        ({"min_severity": "critical"}, "min_severity 'critical' is not one of low, medium, high"),
    ],
)
def test_filters_that_name_nothing_real(sensor, filters, words):
    data, backend, config = sensor
    _add(backend, "flt", SYSLOG)
    _tamper(backend, "flt", filters=filters)
    result, lines = _check(data, config)
    assert result.exit_code == 1
    assert len(lines) == 1
    assert lines[0].startswith(f"error: forwarding rule 'flt', filters: {words}")


def test_add_accepts_a_made_up_category_but_check_refuses_it(sensor):
    data, backend, config = sensor
    _add(backend, "cat", SYSLOG, filters={"categories": ["Firmware change", "Firmwar change"]})
    result, lines = _check(data, config)
    assert result.exit_code == 1 and len(lines) == 1
    assert "no category 'firmwar change'" in lines[0]


def test_warnings_alone_exit_0(sensor, tmp_path):
    data, backend, config = sensor
    secret = tmp_path / "hmac.key"
    secret.write_text("k")
    secret.chmod(0o644)  # world-readable
    _add(
        backend,
        "w",
        {"kind": "webhook", "url": "http://hooks.example/x", "secret_file": str(secret)},
        {"kind": "webhook", "url": "https://hooks.example/x", "verify": False},
        {"kind": "webhook", "url": "http://127.0.0.1:8080/relay"},
    )
    result, lines = _check(data, config)
    assert result.exit_code == 0, result.output
    assert len(lines) == 3, lines
    assert all(line.startswith("warning: forwarding rule 'w', target ") for line in lines)
    assert "plain HTTP to another host" in lines[0]
    assert f"secret_file {secret} holds a secret but its mode 0644" in lines[1]
    assert lines[2].startswith("warning: forwarding rule 'w', target 2 (")
    assert "verification is off" in lines[2]
    assert "k\n" not in result.output  # the secret itself is never printed
    assert "ok: 1 forwarding rule in" in result.stdout


def test_config_and_forwarding_problems_are_both_listed(sensor, tmp_path):
    data, backend, _ = sensor
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text('[sensor]\nid = "no spaces allowed"\n')
    _add(backend, "h", {**SYSLOG, "host": "a b"})
    result, lines = _check(data, bad_config)
    assert result.exit_code == 1
    assert "sensor.id" in result.stderr and len(lines) == 1


def test_central_rules_with_db(tmp_path, sensor):
    _, _, config = sensor
    url = f"sqlite:///{tmp_path / 'central.db'}"
    store = open_central_store(url)
    try:
        backend = central_backend(store)
        _add(backend, "c", {**SYSLOG, "host": "x..y"}, filters={"sensors": ["s1"]})
    finally:
        store.close()
    result, lines = _check(tmp_path / "no-sensor-store", config, "--db", url)
    assert result.exit_code == 1
    assert lines == [
        "error: forwarding rule 'c', target 1 (syslog tcp://x..y:6514 (cef)): "
        "host 'x..y' is not an IP address or a host name"
    ]
