"""What the portal needs from the API, on SQLite and PostgreSQL: ``total``, sorting on every
grid column, the ``learnable`` filter, group by protocol and type, the details' comments,
tactics, entities and learn refusal, comments from central as commands, PCAP status keys."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from otwatch.alerts.catalog import TACTICS
from otwatch.alerts.views import GROUP_BY, SORT_KEYS
from otwatch.central import alertviews as views
from otwatch.central.alertextras import ATTACK_ICS_TACTICS
from otwatch.central.api import LocalCommander, create_app
from otwatch.central.node import CentralNode
from otwatch.central.pcapstore import PcapStore
from otwatch.central.store import alerts as alert_store
from otwatch.central.store.models import AuditEvent, Command
from tests.centralapi import add_alerts, snapshot, token
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.portalauth import sign_in, user

API = "/api/v1"


@pytest.fixture
def world(central_store, tmp_path):  # noqa: F811
    add_alerts(
        central_store,
        "s1",
        [
            snapshot(1, source_mac="00:00:5e:00:53:01", tactics=["Impair Process Control"]),
            snapshot(2, severity="high", protocol="dnp3", source_address="192.0.2.1"),
            snapshot(
                3,
                type_id="modbus_exception",
                name="Modbus Exception",
                engine="protocol_violation",
                learnable=False,
                tactics=["Collection", "Inhibit Response Function"],
                fields={"function_code": 5, "source_name": "hmi-1"},
            ),
        ],
    )
    add_alerts(central_store, "s-2", [snapshot(7, site="other", zone="z9", protocol="dnp3")])
    engine = CentralNode(central_store, pcap_sink=PcapStore(central_store, tmp_path / "pcap"))
    app = create_app(central_store, LocalCommander(engine), engine.pcap_sink)
    client = TestClient(app)
    user(central_store, "alice", "admin")
    csrf = sign_in(client, "alice")
    reader = {"Authorization": f"Bearer {token(central_store, 'bob', 'reader')}"}
    return client, csrf, reader, central_store


def listing(client, **params) -> dict:
    response = client.get(f"{API}/alerts", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_total_counts_every_match_not_only_the_page(world):
    client = world[0]
    assert listing(client, limit=1)["total"] == 4
    assert listing(client, limit=1, severity="medium")["total"] == 3  # from alert_counts
    assert listing(client, protocol="dnp3")["total"] == 2  # scanned
    assert listing(client, search="Exception", limit=1)["total"] == 1
    assert listing(client, severity="low")["total"] == 0


def test_total_beyond_the_cap_of_a_scanned_filter_is_a_lower_bound(world, monkeypatch):
    client = world[0]
    monkeypatch.setattr(views, "TOTAL_CAP", 1)
    scanned = listing(client, protocol="dnp3")
    assert (scanned["total"], scanned["total_at_least"]) == (None, 2)
    searched = listing(client, search="alert")  # SQLite: the search index alone says so
    assert (searched["total"], searched["total_at_least"]) == (None, 2)
    assert listing(client, search="alert 7")["total"] == 1
    counted = listing(client, severity="medium")  # from alert_counts: exact whatever its size
    assert (counted["total"], counted["total_at_least"]) == (3, 3)


def test_every_grid_column_sorts_both_ways(world):
    client = world[0]
    for key in SORT_KEYS:
        for sort in (key, f"-{key}"):
            rows = listing(client, sort=sort)["alerts"]
            assert len(rows) == 4, sort
            if key in ("id", "severity", "tactics"):
                continue
            values = [r[key] for r in rows]
            assert values == sorted(values, reverse=sort.startswith("-")), sort
    by_site = [r["id"] for r in listing(client, sort="site")["alerts"]]
    assert by_site[0] == "7-s-2"  # "other" before "plant"
    assert client.get(f"{API}/alerts", params={"sort": "message"}).status_code == 400


def test_learnable_filter_and_group_by_protocol_and_type(world):
    client = world[0]
    assert [r["id"] for r in listing(client, learnable="false")["alerts"]] == ["3-s1"]
    assert len(listing(client, learnable="true")["alerts"]) == 3
    assert {"protocol", "type"} <= set(GROUP_BY)
    groups = client.get(f"{API}/alerts/groups", params={"by": "protocol"}).json()["groups"]
    assert groups == [{"value": "dnp3", "count": 2}, {"value": "modbus", "count": 2}]
    groups = client.get(f"{API}/alerts/groups", params={"by": "type", "learnable": "false"})
    assert groups.json()["groups"] == [{"value": "modbus_exception", "count": 1}]


def test_details_have_tactics_entities_and_the_learn_refusal(world):
    client = world[0]
    assert set(ATTACK_ICS_TACTICS) == set(TACTICS)
    one = client.get(f"{API}/alerts/1-s1").json()
    assert one["tactics"] == [{"id": "TA0106", "name": "Impair Process Control"}]
    assert one["learnable"] is True and one["learn_refusal"] is None
    source = one["entities"]["source"]
    assert (source["address"], source["mac"], source["name"]) == (
        "192.0.2.2",
        "00:00:5e:00:53:01",
        None,
    )
    assert source["alerts_as_source"] == 1 and source["alerts_as_destination"] == 0
    assert one["entities"]["destination"]["alerts_as_destination"] == 4
    three = client.get(f"{API}/alerts/3-s1").json()
    assert three["learnable"] is False and "not learnable" in three["learn_refusal"]
    assert three["entities"]["source"]["name"] == "hmi-1"
    assert [t["id"] for t in three["tactics"]] == ["TA0100", "TA0107"]


def test_a_comment_is_recorded_centrally_and_sent_to_the_sensor(world):
    client, csrf, reader, store = world
    text = 'Checked: <img src=x onerror="alert(1)"> =cmd|calc'
    answer = client.post(
        f"{API}/alerts/comment", json={"ids": ["1-s1", "99-s1"], "text": text}, headers=csrf
    )
    assert answer.status_code == 200
    applied, missing = answer.json()["results"]
    assert applied["outcome"] == "applied" and applied["commands"]
    assert missing["outcome"] == "not_found"
    with store.session() as s:
        command = s.get(Command, applied["commands"][0])
        assert (command.kind, command.actor, command.params["text"]) == (
            "comment",
            "user:alice",
            text,
        )
        from otwatch.central.store.commands import command_message

        assert command_message(command)["text"] == text
    comments = client.get(f"{API}/alerts/1-s1").json()["comments"]
    assert [(c["author"], c["text"], c["origin"]) for c in comments] == [
        ("user:alice", text, "central")
    ]
    # the sensor's echo of that comment is the same comment, a sensor-side one is listed
    with store.session() as s:
        alert_store.add_audit(
            s,
            [
                {"event_id": "e1", "sensor": "s1", "alert_id": 1, "ts_ns": 2, "actor":
                 "central:user:alice", "origin": "central", "action": "comment",
                 "detail": {"text": text, "hlc": 1}},
                {"event_id": "e2", "sensor": "s1", "alert_id": 1, "ts_ns": 3, "actor":
                 "cli:root", "origin": "sensor", "action": "comment",
                 "detail": {"text": "from the plant", "hlc": 2}},
            ],
        )  # fmt: skip
    comments = client.get(f"{API}/alerts/1-s1").json()["comments"]
    assert [c["author"] for c in comments] == ["cli:root", "user:alice"]  # oldest first
    for bad in ({"ids": ["1-s1"], "text": ""}, {"ids": ["1-s1"], "text": "x" * 2001}):
        assert client.post(f"{API}/alerts/comment", json=bad, headers=csrf).status_code == 422
    refused = client.post(
        f"{API}/alerts/comment", json={"ids": ["1-s1"], "text": "no"}, headers=reader
    )
    assert refused.status_code == 403
    with store.session() as s:
        audit = s.scalars(select(AuditEvent.actor).where(AuditEvent.action == "comment"))
        assert sorted(audit) == ["central:user:alice", "cli:root", "user:alice"]


def test_pcap_status_names_its_progress_fields(world):
    client, csrf, _reader, _store = world
    answer = client.post(f"{API}/alerts/1-s1/pcap", headers=csrf)
    assert answer.status_code == 200, answer.text
    status = client.get(f"{API}/pcap/{answer.json()['request_id']}").json()
    for key in ("state", "reason", "chunks_received", "chunks_total", "bytes", "message"):
        assert key in status
    assert status["state"] == "pending"
