"""Values out of every column's range: a clear 4xx from the API, one ``Error:`` line and a
non-zero exit from the CLI, never a traceback (OverflowError) or a 500."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from otwatch.central.api import LocalCommander, create_app
from otwatch.central.node import CentralNode
from otwatch.central.store.db import open_central_store
from otwatch.cli.main import cli
from otwatch.timeutil import format_iso, parse_time_ns
from tests.centralapi import add_alerts, snapshot, token
from tests.integration.central_procs import sensor_with_pcaps

API = "/api/v1"
HOSTILE_TIMES = [
    ("since", "0001-01-01"),
    ("since", "99999999999h"),
    ("since", "9" * 400),
    ("until", "9999-12-31T23:59:59Z"),
    ("until", "1969-12-31T23:59:59Z"),
]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    store = open_central_store(f"sqlite:///{tmp_path_factory.mktemp('c') / 'central.db'}")
    add_alerts(store, "s1", [snapshot(1), snapshot(2)])
    client = TestClient(create_app(store, LocalCommander(CentralNode(store))))
    yield client, {"Authorization": f"Bearer {token(store, 'alice', 'reader')}"}
    store.close()


@pytest.mark.parametrize("route", ["/alerts", "/alerts/export.csv", "/alerts/groups?by=type"])
@pytest.mark.parametrize(("key", "value"), HOSTILE_TIMES)
def test_api_refuses_times_out_of_range(api, route, key, value):
    client, reader = api
    sep = "&" if "?" in route else "?"
    response = client.get(f"{API}{route}{sep}{key}={value}", headers=reader)
    assert response.status_code == 400, response.text
    assert "out of range" in response.json()["detail"] or "too long" in response.json()["detail"]
    # the API still answers normally afterwards
    assert client.get(f"{API}/alerts?since=2000-01-01", headers=reader).status_code == 200


@pytest.fixture(scope="module")
def sensor_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("sensor")
    sensor_with_pcaps(data).close()
    return data


@pytest.mark.parametrize(
    "args",
    [
        ["alerts", "list", "--since", "0001-01-01"],
        ["alerts", "list", "--since", "99999999999h"],
        ["alerts", "list", "--until", "9999-12-31T23:59:59Z"],
        ["alerts", "list", "--limit", "99999999999999999999999"],
        ["alerts", "export", "-o", "-", "--since", "0001-01-01"],
        ["alerts", "list", "--group-by", "name", "--since", "0001-01-01"],
        ["alerts", "show", "99999999999999999999999"],
        ["alerts", "set-status", "closed", "99999999999999999999999"],
        ["pcap", "get", "99999999999999999999999", "-o", "-"],
        ["maintenance", "run", "--retention-days", "99999999999999"],
    ],
    ids=lambda a: " ".join(a)[:50],
)
def test_cli_refuses_values_out_of_range(sensor_dir, args):
    result = CliRunner().invoke(cli, ["--data-dir", str(sensor_dir), *args])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and "OverflowError" not in result.output
    assert (
        "out of range" in result.output
        or "too long" in result.output
        or ("is not in the range" in result.output)
    )


def test_central_cli_never_sends_a_year_without_four_digits(monkeypatch):
    """``--since 0001-01-01`` used to reach central as ``1-01-01T…``; now it is refused before
    any request, and every time the client sends has a four-digit year."""
    result = CliRunner().invoke(
        cli,
        ["--central", "http://127.0.0.1:9", "--token", "t", "alerts", "list", "--since",
         "0001-01-01"],
    )  # fmt: skip
    assert result.exit_code == 2 and "out of range" in result.output
    assert format_iso(0) == "1970-01-01T00:00:00.000000Z"
    assert format_iso(parse_time_ns("2262-04-11T23:47:16Z")).startswith("2262-04-11T23:47:16")
