"""Central API and sensor CLI security: reader tokens change nothing on any mutating route
(enumerated from the app, so a new route is covered automatically), PCAP ids cannot escape
their directory, search and filter input cannot inject SQL (SQLite and PostgreSQL).

Already covered elsewhere and not repeated here: central refuses unlearn/mute/unmute/comment
(``tests/unit/central/api/test_api.py::test_learn_only_learnable_and_sensor_only_actions_
refused``, ``tests/unit/central/test_ingest.py::test_sensor_only_command_sent_anyway_is_
refused_and_the_refusal_reaches_central``); topic/payload sensor-id mismatch dropped
(``test_ingest.py::test_wrong_sensor_id_in_payload_is_dropped_and_counted``).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.store.db import open_store
from otwatch.alerts.catalog import load_catalog
from otwatch.central.api import LocalCommander, create_app
from otwatch.central.node import CentralNode
from otwatch.central.pcapstore import PcapStore
from otwatch.central.store.models import Alert, AuditEvent, Command
from otwatch.cli.main import cli
from tests.centralapi import add_alerts, snapshot, token
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.factories import T0, detection

API = "/api/v1"
INJECTIONS = [
    "'; DROP TABLE alerts; --",
    "x' OR '1'='1",
    "%' OR 1=1 --",
    "\\' UNION SELECT token_sha256 FROM api_tokens --",
    '" OR ""="',
    "1; DELETE FROM alerts",
    "_",
    "%",
]
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def world(central_store, tmp_path):  # noqa: F811
    # one alert per payload carrying it literally in its message, plus bystanders
    alerts = [snapshot(i + 1, message=f"seen {text} here") for i, text in enumerate(INJECTIONS)]
    alerts += [snapshot(100, message="plain one"), snapshot(101, message="plain two")]
    add_alerts(central_store, "s1", alerts)
    engine = CentralNode(central_store, pcap_sink=PcapStore(central_store, tmp_path / "pcap"))
    client = TestClient(create_app(central_store, LocalCommander(engine), engine.pcap_sink))
    admin = {"Authorization": f"Bearer {token(central_store, 'alice', 'admin')}"}
    reader = {"Authorization": f"Bearer {token(central_store, 'bob', 'reader')}"}
    return client, admin, reader, central_store, tmp_path


def counts(store) -> tuple[int, ...]:
    with store.session() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m)) for m in (Alert, AuditEvent, Command)
        )


def concrete_urls(app, path: str, method: str) -> list[str]:
    """``path`` with its parameters filled: every enum value the schema lists, an alert id,
    or a well-formed request id."""
    operation = app.openapi()["paths"][path][method.lower()]
    urls = [path]
    for param in operation.get("parameters", []):
        if param["in"] != "path":
            continue
        name, schema = param["name"], param.get("schema", {})
        values = schema.get("enum") or (
            ["1-s1"] if name == "alert_id" else ["00000000-0000-4000-8000-000000000000"]
        )
        urls = [u.replace("{" + name + "}", str(v)) for u in urls for v in values]
    return urls


def test_reader_token_is_refused_on_every_mutating_route(world):
    client, _admin, reader, store, _ = world
    routes = [  # routes of included routers too (FastAPI keeps those nested)
        (method, route.path)
        for route in iter_route_contexts(client.app.routes)
        if isinstance(route.original_route, APIRoute)
        for method in (route.methods or set()) & MUTATING
        if route.path != "/auth/login"  # needs no credentials: tests/.../test_portal_auth.py
    ]
    assert len(routes) >= 5  # status, severity, learn, sensor-only actions, pcap request
    before = counts(store)
    tried = 0
    for method, path in routes:
        for url in concrete_urls(client.app, path, method):
            body = {"ids": ["1-s1"], "status": "closed", "severity": "low", "text": "x"}
            response = client.request(method, url, json=body, headers=reader)
            # 403 by role; sensor-only actions are refused (409) for every caller anyway
            refused = (
                response.status_code == 409
                and "only possible on the sensor" in (response.json()["detail"])
            )
            assert response.status_code == 403 or refused, (method, url, response.text)
            assert client.request(method, url, json=body).status_code == 401, (method, url)
            tried += 1
    assert counts(store) == before
    with store.session() as s:
        assert set(s.scalars(select(Alert.status))) == {"new"}
    assert tried >= len(routes)


@pytest.mark.parametrize("text", INJECTIONS)
def test_central_search_matches_exactly_the_literal_text(world, text):
    client, _admin, reader, store, _ = world
    before = counts(store)
    expected = sorted(
        f"{i + 1}-s1" for i, other in enumerate(INJECTIONS) if text in f"seen {other} here"
    )
    response = client.get(f"{API}/alerts", params={"search": text, "limit": 500}, headers=reader)
    assert response.status_code == 200
    assert sorted(a["id"] for a in response.json()["alerts"]) == expected
    for name in ("sensor", "source", "category", "site", "zone", "type", "protocol"):
        response = client.get(f"{API}/alerts", params={name: text}, headers=reader)
        assert response.status_code in (200, 422), name
        if response.status_code == 200:
            assert response.json()["alerts"] == [], name
    assert counts(store) == before


@pytest.mark.parametrize(
    "bad",
    ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "%2Fetc%2Fpasswd", "x%00y",
     "1-s1%00", "..", "1-s1/../../x"],
)  # fmt: skip
def test_pcap_ids_and_alert_ids_cannot_escape(world, bad):
    client, admin, _reader, store, tmp_path = world
    outside = tmp_path / "secret.pcap"
    outside.write_bytes(b"secret")
    before = counts(store)
    for method, path in (
        ("GET", f"{API}/pcap/{bad}"),
        ("GET", f"{API}/pcap/{bad}/file"),
        ("POST", f"{API}/alerts/{bad}/pcap"),
        ("GET", f"{API}/alerts/{bad}"),
    ):
        response = client.request(method, path, headers=admin)
        assert response.status_code in (400, 404, 405, 422), (method, path, response.status_code)
        assert b"secret" not in response.content
    assert counts(store) == before


@pytest.fixture
def sensor_dir(tmp_path):
    data = tmp_path / "sensor"
    store = open_store(data)
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    for i, text in enumerate(INJECTIONS):
        det = detection(src=f"192.0.2.{i + 1}", ts_ns=T0 + i)
        manager.observe(
            det.__class__(det.type_id, det.dedup_key, det.ts_ns, f"seen {text} here", det.fields)
        )
    manager.flush()
    store.close()
    return data


@pytest.mark.parametrize("text", INJECTIONS)
def test_sensor_cli_filters_match_exactly_the_literal_text(sensor_dir, text):
    runner = CliRunner()

    def listing(*args: str) -> list[int]:
        result = runner.invoke(
            cli, ["--data-dir", str(sensor_dir), "alerts", "list", "--format", "json", *args],
            catch_exceptions=False,
        )  # fmt: skip
        assert result.exit_code in (0, 2), result.output
        return sorted(a["id"] for a in json.loads(result.output)) if result.exit_code == 0 else []

    everything = listing()
    assert len(everything) == len(INJECTIONS)
    expected = sorted(i + 1 for i, other in enumerate(INJECTIONS) if text in f"seen {other} here")
    assert listing("--search", text) == expected
    assert listing("--source", text) == []
    assert listing("--sensor", text) == []
    assert listing() == everything  # tables intact
