"""The central HTTP API with FastAPI's TestClient on a real database (SQLite and PostgreSQL):
listing with the portal's filters, group-by, details, export, roles, triage as commands,
sensor-only refusals, hostile input."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from otwatch.alerts.lifecycle import SENSOR_ONLY
from otwatch.central.api import LocalCommander, create_app
from otwatch.central.node import CentralNode
from otwatch.central.pcapstore import PcapStore
from otwatch.central.store.models import Alert, AuditEvent, Command
from otwatch.central.store.tokens import revoke_token
from otwatch.timeutil import format_iso as iso
from tests.centralapi import add_alerts, snapshot, token
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.factories import MIN, SEC, T0

API = "/api/v1"


@pytest.fixture
def world(central_store, tmp_path):  # noqa: F811
    add_alerts(
        central_store,
        "s1",
        [
            snapshot(1),
            snapshot(2, severity="high", status="active"),
            snapshot(
                3,
                type_id="modbus_exception",
                name="Modbus Exception",
                engine="protocol_violation",
                category="Illegal Commands",
                learnable=False,
                protocol="modbus",
                message="Exception code 2 from PLC",
            ),
            snapshot(4, status="closed", close_reason="muted"),
        ],
    )
    add_alerts(central_store, "s-2", [snapshot(7, site="other", zone="z9", protocol="dnp3")])
    engine = CentralNode(central_store, pcap_sink=PcapStore(central_store, tmp_path / "pcap"))
    app = create_app(central_store, LocalCommander(engine), engine.pcap_sink)
    client = TestClient(app)
    admin = {"Authorization": f"Bearer {token(central_store, 'alice', 'admin')}"}
    reader = {"Authorization": f"Bearer {token(central_store, 'bob', 'reader')}"}
    return client, admin, reader, central_store, engine


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()["alerts"]]


def test_openapi_documents_every_route(world):
    client, _admin, reader = world[:3]
    assert client.get("/openapi.json").status_code == 401  # the schema needs a reader
    paths = client.get("/openapi.json", headers=reader).json()["paths"]
    for path in (
        "/alerts",
        "/alerts/groups",
        "/alerts/export.csv",
        "/alerts/{alert_id}",
        "/alerts/status",
        "/alerts/severity",
        "/alerts/learn",
        "/alerts/{alert_id}/pcap",
        "/pcap/{request_id}",
        "/pcap/{request_id}/file",
    ):
        assert API + path in paths


def test_tokens_are_required_and_revocable(world):
    client, admin, _reader, store, _ = world
    assert client.get(f"{API}/alerts").status_code == 401
    bad = {"Authorization": "Bearer otw_not-a-token"}
    assert client.get(f"{API}/alerts", headers=bad).status_code == 401
    assert client.get(f"{API}/whoami", headers=admin).json() == {
        "name": "alice",
        "role": "admin",
        "kind": "token",
    }
    with store.session() as s:
        revoke_token(s, "alice")
    assert client.get(f"{API}/alerts", headers=admin).status_code == 401


def test_list_filters_sort_and_pages(world):
    client, _admin, reader, *_ = world
    get = lambda **q: client.get(f"{API}/alerts", params=q, headers=reader)  # noqa: E731
    assert ids(get()) == ["7-s-2", "4-s1", "3-s1", "2-s1", "1-s1"]  # newest first
    assert ids(get(status="new,active")) == ["7-s-2", "3-s1", "2-s1", "1-s1"]
    assert ids(get(status="closed")) == ["4-s1"]  # muted on the sensor: Closed centrally
    assert ids(get(severity="high")) == ["2-s1"]
    assert ids(get(engine="protocol_violation")) == ["3-s1"]
    assert ids(get(sensor="s-2")) == ["7-s-2"]
    assert ids(get(site="other")) == ids(get(zone="z9")) == ["7-s-2"]
    assert ids(get(protocol="DNP3")) == ["7-s-2"]
    assert ids(get(search="exception CODE")) == ["3-s1"]
    assert ids(get(source="192.0.2.3")) == ["2-s1"]
    assert ids(get(destination="198.51.100.7", category="Illegal Commands")) == ["3-s1"]
    assert ids(get(sort="id")) == ["1-s1", "2-s1", "3-s1", "4-s1", "7-s-2"]
    page = get(limit=2, offset=1).json()
    assert [a["id"] for a in page["alerts"]] == ["4-s1", "3-s1"] and page["next_offset"] == 3
    row = get(sensor="s1", limit=1).json()["alerts"][0]
    assert {"sensor", "site", "zone", "sensors", "first_detection", "tactics"} <= set(row)
    assert row["sensors"] == ["s1"] and row["status"] == "closed"


def test_time_range_and_bad_values(world):
    client, _admin, reader, *_ = world
    get = lambda **q: client.get(f"{API}/alerts", params=q, headers=reader)  # noqa: E731
    since, until = iso(T0 + 3 * MIN), iso(T0 + 4 * MIN + 30 * SEC)
    assert ids(get(since=since, until=until)) == ["4-s1", "3-s1"]
    for bad in (
        {"status": "open"},
        {"since": "yesterday"},
        {"sort": "id; DROP TABLE alerts"},
        {"limit": "0"},
        {"engine": "x"},
    ):
        response = get(**bad)
        assert response.status_code in (400, 422), bad
        assert "detail" in response.json()


def test_group_by(world):
    client, _admin, reader, *_ = world
    get = lambda by, **q: client.get(  # noqa: E731
        f"{API}/alerts/groups", params={"by": by, **q}, headers=reader
    ).json()["groups"]
    assert get("engine") == [
        {"value": "policy_violation", "count": 4},
        {"value": "protocol_violation", "count": 1},
    ]
    assert {g["value"]: g["count"] for g in get("sensor")} == {"s1": 4, "s-2": 1}
    assert {g["value"]: g["count"] for g in get("severity", status="new")} == {"medium": 3}
    assert {g["value"] for g in get("site")} == {"plant", "other"}
    assert len(get("name")) == 2
    assert (
        client.get(f"{API}/alerts/groups", params={"by": "message"}, headers=reader).status_code
        == 400
    )


def test_details_show_remediation_audit_and_sensors(world):
    client, admin, reader, *_ = world
    client.post(f"{API}/alerts/severity", json={"ids": ["1-s1"], "severity": "high"}, headers=admin)
    data = client.get(f"{API}/alerts/1-s1", headers=reader).json()
    assert data["id"] == "1-s1" and data["severity"] == "high"
    assert data["remediation"] == ["Check the PLC program."]
    assert data["parameters"] == {"function_code": 5}
    assert [e["actor"] for e in data["audit"]] == ["token:alice"]
    assert data["seen_by"][0]["sensor"] == "s1" and data["seen_by"][0]["sensor_online"] is True
    assert client.get(f"{API}/alerts/99-s1", headers=reader).status_code == 404
    assert client.get(f"{API}/alerts/s1", headers=reader).status_code == 400


def test_reader_cannot_change_anything(world):
    client, _admin, reader, store, _ = world
    attempts = [
        ("/alerts/status", {"ids": ["1-s1"], "status": "closed"}),
        ("/alerts/severity", {"ids": ["1-s1"], "severity": "low"}),
        ("/alerts/learn", {"ids": ["1-s1"]}),
        ("/alerts/1-s1/pcap", None),
    ]
    for path, body in attempts:
        response = client.post(API + path, json=body, headers=reader)
        assert response.status_code == 403, path
        assert "admin" in response.json()["detail"]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Command)) == 0
        assert s.scalar(select(Alert.status).where(Alert.alert_id == 1)) == "new"


def test_admin_changes_become_commands_audited_with_the_token_name(world):
    client, admin, _reader, store, _ = world
    response = client.post(
        f"{API}/alerts/status",
        json={"ids": ["1-s1", "2-s1", "99-s1", "4-s1"], "status": "closed"},
        headers=admin,
    )
    results = {r["alert_id"]: r["outcome"] for r in response.json()["results"]}
    assert results == {
        "1-s1": "applied",
        "2-s1": "applied",
        "99-s1": "not_found",
        "4-s1": "unchanged",
    }
    reopen = client.post(
        f"{API}/alerts/status", json={"ids": ["4-s1"], "status": "new"}, headers=admin
    ).json()["results"][0]
    assert reopen["outcome"] == "refused" and "muted" in reopen["message"]  # unmute: sensor only
    with store.session() as s:
        commands = s.scalars(select(Command).order_by(Command.alert_id)).all()
        assert [(c.sensor, c.kind, c.alert_id, c.value, c.actor) for c in commands] == [
            ("s1", "status", 1, "closed", "token:alice"),
            ("s1", "status", 2, "closed", "token:alice"),
        ]
        assert s.scalar(select(Alert.status).where(Alert.alert_id == 1)) == "closed"
        actors = set(s.scalars(select(AuditEvent.actor)))
        assert actors == {"token:alice"}
    again = client.post(
        f"{API}/alerts/status", json={"ids": ["1-s1"], "status": "closed"}, headers=admin
    ).json()["results"]
    assert again[0]["outcome"] == "unchanged"


def test_learn_only_learnable_and_sensor_only_actions_refused(world):
    client, admin, *_ = world
    results = client.post(
        f"{API}/alerts/learn", json={"ids": ["1-s1", "3-s1"]}, headers=admin
    ).json()["results"]
    assert [r["outcome"] for r in results] == ["applied", "refused"]
    assert "not learnable" in results[1]["message"]
    for action in sorted(SENSOR_ONLY):  # the lifecycle's one list: the API refuses each
        response = client.post(f"{API}/alerts/{action}", json={"ids": ["1-s1"]}, headers=admin)
        assert response.status_code == 409
        assert "only possible on the sensor" in response.json()["detail"]


INJECTIONS = [
    "'; DROP TABLE alerts; --",
    "x' OR '1'='1",
    "%' OR 1=1 --",
    "\\' UNION SELECT token_sha256 FROM api_tokens --",
    "_",
    "%",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_sql_injection_in_search_and_filters_is_harmless(world, text):
    client, _admin, reader, store, _ = world
    for params in (
        {"search": text},
        {"sensor": text},
        {"source": text},
        {"category": text},
        {"site": text},
    ):
        response = client.get(f"{API}/alerts", params=params, headers=reader)
        assert response.status_code == 200 and response.json()["alerts"] == [], params
        groups = client.get(
            f"{API}/alerts/groups", params={"by": "sensor", **params}, headers=reader
        )
        assert groups.json()["groups"] == []
    assert client.get(f"{API}/alerts/{text}", headers=reader).status_code in (400, 404)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 5


def test_csv_export_of_the_filtered_selection(world):
    client, _admin, reader, *_ = world
    response = client.get(
        f"{API}/alerts/export.csv", params={"sensor": "s1", "status": "new"}, headers=reader
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["id"] for r in rows] == ["3-s1", "1-s1"]
    assert rows[0]["sensor"] == "s1" and rows[0]["pcap_available"] == "no"
    empty = client.get(f"{API}/alerts/export.csv", params={"search": "nothing"}, headers=reader)
    assert empty.text.startswith("id,name,severity") and len(empty.text.splitlines()) == 1
