"""Central's forwarding API (admin role): add, list, show, enable/disable, test, delete;
files only under the forwarding directory, no file targets, header values never shown."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from otwatch.central.api import LocalCommander, create_app
from otwatch.central.api import forwarding as api
from otwatch.central.node import CentralNode
from otwatch.central.store.models import AuditEvent
from tests.centralapi import token
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401

BASE = "/api/v1/forwarding/rules"


@pytest.fixture
def client(central_store, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(api, "FILES_DIR", tmp_path)
    app = create_app(central_store, LocalCommander(CentralNode(central_store)))
    admin = {"Authorization": f"Bearer {token(central_store, 'alice', 'admin')}"}
    reader = {"Authorization": f"Bearer {token(central_store, 'bob', 'reader')}"}
    return TestClient(app), admin, reader, central_store


def test_admin_manages_rules_readers_may_not(client, tmp_path):
    http, admin, reader, store = client
    (tmp_path / "secret").write_text("k")
    rule = {
        "name": "soc",
        "filters": {"min_severity": "medium", "sites": ["north"]},
        "updates": True,
        "targets": [
            {
                "kind": "syslog",
                "host": "127.0.0.1",
                "port": 9,
                "transport": "tcp",
                "format": "leef",
            },
            {
                "kind": "webhook",
                "url": "https://127.0.0.1:9/hook",
                "secret_file": str(tmp_path / "secret"),
                "headers": {"X-Key": "hunter2"},
            },
        ],
    }
    assert http.post(BASE, json=rule, headers=reader).status_code == 403
    assert http.get(BASE, headers=reader).status_code == 403
    created = http.post(BASE, json=rule, headers=admin)
    assert created.status_code == 201, created.text
    assert "hunter2" not in created.text
    assert created.json()["targets"][1]["settings"]["headers"] == {"X-Key": "(set)"}
    assert http.post(BASE, json=rule, headers=admin).status_code == 409
    [listed] = http.get(BASE, headers=admin).json()
    assert listed["filters"] == {"min_severity": "medium", "sites": ["north"]}
    assert http.post(f"{BASE}/soc/disable", headers=admin).json()["changed"] is True
    assert http.get(f"{BASE}/soc", headers=admin).json()["enabled"] is False
    results = http.post(f"{BASE}/soc/test", headers=admin).json()
    assert [r["ok"] for r in results] == [False, False]
    assert results[0]["error"].endswith("connection refused")
    assert http.delete(f"{BASE}/soc", headers=admin).json() == {"removed": "soc"}
    assert http.get(f"{BASE}/soc", headers=admin).status_code == 404
    with store.session() as s:
        actions = [a.action for a in s.query(AuditEvent).filter(AuditEvent.alert_id.is_(None))]
    assert actions == ["forwarding_add", "forwarding_disable", "forwarding_remove"]


def test_api_refuses_files_outside_its_directory_and_file_targets(client):
    http, admin, _reader, _store = client
    hook = {"kind": "webhook", "url": "https://h.example/x", "secret_file": "/etc/shadow"}
    answer = http.post(BASE, json={"name": "x", "targets": [hook]}, headers=admin)
    assert answer.status_code == 400 and "must be under" in answer.json()["detail"]
    header = {"kind": "webhook", "url": "https://h.example/x", "headers": {"A": "@/etc/passwd"}}
    answer = http.post(BASE, json={"name": "x", "targets": [header]}, headers=admin)
    assert answer.status_code == 400
    target = {"kind": "file", "path": "/tmp/anything.json"}
    answer = http.post(BASE, json={"name": "x", "targets": [target]}, headers=admin)
    assert answer.status_code == 400
    assert "file targets" in answer.json()["detail"]
    answer = http.post(BASE, json={"name": "x", "targets": []}, headers=admin)
    assert answer.status_code == 400 and "targets" in answer.json()["detail"]
