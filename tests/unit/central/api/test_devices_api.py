"""The central device API on a real database (SQLite and PostgreSQL), seeded through the
store's upsert: filters include and exclude, paging, sorting, details with recent alerts,
overrides as commands (admin; readers 403; token and portal cookie + CSRF), alert records'
device links resolved at read time."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from otwatch.central.api import LocalCommander, create_app
from otwatch.central.node import CentralNode
from otwatch.central.pcapstore import PcapStore
from otwatch.central.store import devices as device_store
from otwatch.central.store.models import AuditEvent, Command
from otwatch.sync.protocol.devices import DeviceSnapshot
from otwatch.timeutil import format_iso
from tests.centralapi import add_alerts, add_sensor, snapshot, token
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.factories import MIN, SEC, T0
from tests.portalauth import sign_in, user

API = "/api/v1"


def device(device_id: int, ip: str | None, **over: Any) -> dict[str, Any]:
    """A sensor's ``DeviceSnapshot`` dict, validated as the sync validates it."""
    snap = {
        "id": device_id, "key": ip or f"mac:{over.get('mac')}", "ip": ip,
        "mac": f"00:00:5e:00:53:{device_id:02x}", "vlan": None, "name": None,
        "vendor": None, "model": None, "firmware": None, "type": "Unknown",
        "purdue_level": None, "type_reason": "", "protocols": [], "peers": 1, "learned": True,
        "first_seen_ns": T0, "last_seen_ns": T0 + device_id * MIN, "packets_in": 1,
        "packets_out": 2, "bytes_in": 60, "bytes_out": 120,
        "overrides": {"name": None, "type": None, "purdue_level": None},
        "facts": [], "names": {}, "mac_history": [], "services": [], "peer_addresses": [],
        "evidence": [],
    }  # fmt: skip
    snap.update(over)
    return DeviceSnapshot.model_validate(snap).model_dump()


def seed(store, sensor: str, devices: list[dict[str, Any]]) -> None:
    with store.session() as s:
        for d in devices:
            device_store.upsert_device(s, sensor, d, T0)


PLC = device(
    1, "192.0.2.10", name="plc-1", vendor="Siemens AG", model="6ES7 315-2EH14-0AB0",
    firmware="V3.2.6", type="PLC", purdue_level=1, protocols=["s7comm"],
    type_reason="serves s7comm",
    facts=[{"field": "model", "value": "6ES7 315-2EH14-0AB0", "source": "s7-szl",
            "ts_ns": T0}],
    names={"plc-1": "s7-szl"},
    mac_history=[{"mac": "00:00:5e:00:53:01", "first_ns": T0, "last_ns": T0 + MIN}],
    services=["server:tcp/102/s7comm"], peer_addresses=["192.0.2.20"],
)  # fmt: skip
HMI = device(
    2, "192.0.2.20", vendor="Rockwell Automation", type="HMI/SCADA client", purdue_level=2,
    protocols=["enip", "modbus"], learned=False,
)  # fmt: skip
HOST = device(3, "198.51.100.5", name="eng-ws", vendor=None, type="Engineering station",
              purdue_level=2, protocols=["s7comm"])  # fmt: skip


@pytest.fixture
def world(central_store, tmp_path):  # noqa: F811
    add_alerts(
        central_store,
        "s1",
        [
            snapshot(1, source_address="192.0.2.20", destination_address="192.0.2.10"),
            snapshot(2, source_address="192.0.2.10", destination_address="203.0.113.9",
                     severity="high"),
            snapshot(3, source_address="198.51.100.5", destination_address="192.0.2.99"),
        ],
    )  # fmt: skip
    add_sensor(central_store, "s-2", site="other", zone="z9")
    seed(central_store, "s1", [PLC, HMI, HOST])
    seed(central_store, "s-2", [device(1, "192.0.2.10", vendor="Schneider Electric",
                                       type="PLC", protocols=["modbus"])])  # fmt: skip
    engine = CentralNode(central_store, pcap_sink=PcapStore(central_store, tmp_path / "pcap"))
    app = create_app(central_store, LocalCommander(engine), engine.pcap_sink)
    client = TestClient(app)
    admin = {"Authorization": f"Bearer {token(central_store, 'alice', 'admin')}"}
    reader = {"Authorization": f"Bearer {token(central_store, 'bob', 'reader')}"}
    return client, admin, reader, central_store


def listing(client, headers, **params) -> dict[str, Any]:
    response = client.get(f"{API}/devices", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def keys(page: dict[str, Any]) -> list[tuple[str, str]]:
    return [(d["sensor_id"], d["ip"]) for d in page["items"]]


def test_list_filters_include_and_exclude(world):
    client, _admin, reader, _store = world
    get = lambda **q: keys(listing(client, reader, **q))  # noqa: E731
    everything = listing(client, reader)
    assert everything["total"] == 4
    assert get() == [("s1", "192.0.2.10"), ("s-2", "192.0.2.10"), ("s1", "192.0.2.20"),
                     ("s1", "198.51.100.5")]  # fmt: skip
    assert get(search="SIEMENS") == [("s1", "192.0.2.10")]  # vendor, any case
    assert get(search="eng-") == [("s1", "198.51.100.5")]  # name
    assert get(search="00:00:5e:00:53:02") == [("s1", "192.0.2.20")]  # MAC
    assert get(search="2EH14") == [("s1", "192.0.2.10")]  # model
    assert get(search="100%") == []  # LIKE wildcards are literal
    assert get(type="plc") == [("s1", "192.0.2.10"), ("s-2", "192.0.2.10")]
    assert get(type="PLC,Engineering station") == [
        ("s1", "192.0.2.10"), ("s-2", "192.0.2.10"), ("s1", "198.51.100.5")]  # fmt: skip
    assert get(vendor="rockwell") == [("s1", "192.0.2.20")]
    assert get(protocol="modbus") == [("s-2", "192.0.2.10"), ("s1", "192.0.2.20")]
    assert get(protocol="MODBUS", sensor="s1") == [("s1", "192.0.2.20")]
    assert get(subnet="198.51.100.0/24") == [("s1", "198.51.100.5")]
    assert get(subnet="192.0.2.16/28") == [("s1", "192.0.2.20")]  # .16-.31, not .10
    assert get(sensor="s-2") == [("s-2", "192.0.2.10")]
    assert get(new="true") == [("s1", "192.0.2.20")]
    assert len(get(new="false")) == 4
    since = format_iso(T0 + 2 * MIN + 30 * SEC)
    assert get(since=since) == [("s1", "198.51.100.5")]  # T0 + 3 min last
    item = listing(client, reader, sensor="s1", search="plc-1")["items"][0]
    assert item["site"] == "plant" and item["sensor_device_id"] == 1
    assert item["first_seen"] == format_iso(T0) and item["protocols"] == ["s7comm"]
    assert item["overrides"] == {"name": None, "type": None, "purdue_level": None,
                                 "central": None}  # fmt: skip


def test_paging_and_sorting(world):
    client, _admin, reader, _store = world
    page = listing(client, reader, limit=2, offset=1)
    assert page["total"] == 4 and keys(page) == [("s-2", "192.0.2.10"), ("s1", "192.0.2.20")]
    assert keys(listing(client, reader, offset=4)) == []
    by_seen = listing(client, reader, sort="last_seen", order="desc")
    assert [d["last_seen"] for d in by_seen["items"]] == sorted(
        (d["last_seen"] for d in by_seen["items"]), reverse=True)  # fmt: skip
    names = [d["name"] for d in listing(client, reader, sort="name")["items"]]
    assert names == ["eng-ws", "plc-1", None, None]  # nulls last on both databases
    names = [d["name"] for d in listing(client, reader, sort="name", order="desc")["items"]]
    assert names == ["plc-1", "eng-ws", None, None]
    ips = [d["ip"] for d in listing(client, reader, sort="ip", order="desc")["items"]]
    assert ips[0] == "198.51.100.5"  # numeric order of addresses
    levels = [d["purdue_level"] for d in listing(client, reader, sort="purdue_level")["items"]]
    assert levels == [1, 2, 2, None]  # s-2's PLC has none
    protocols = [d["protocols"] for d in listing(client, reader, sort="protocols")["items"]]
    assert protocols == [["enip", "modbus"], ["modbus"], ["s7comm"], ["s7comm"]]
    protocols = [d["protocols"] for d in listing(client, reader, sort="protocols",
                                                 order="desc")["items"]]  # fmt: skip
    assert protocols == [["s7comm"], ["s7comm"], ["modbus"], ["enip", "modbus"]]
    learned = [d["learned"] for d in listing(client, reader, sort="learned")["items"]]
    assert learned == sorted(learned) and learned[0] is False and learned[-1] is True
    for key in device_store.SORT_KEYS:
        assert listing(client, reader, sort=key)["total"] == 4


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"sort": "password"}, 400, "cannot sort by"),
        ({"type": "toaster"}, 400, "invalid type toaster"),
        ({"subnet": "192.0.2.0/99"}, 400, "invalid subnet"),
        ({"since": "yesterday"}, 400, "invalid time"),
        ({"limit": "1001"}, 422, ""),
        ({"limit": "0"}, 422, ""),
        ({"offset": "-1"}, 422, ""),
        ({"order": "sideways"}, 422, ""),
    ],
)
def test_bad_queries_are_clear_errors(world, params, status, says):
    client, _admin, reader, _store = world
    response = client.get(f"{API}/devices", params=params, headers=reader)
    assert response.status_code == status, response.text
    assert says in str(response.json()["detail"])


def test_details_with_sections_and_recent_alerts(world):
    client, _admin, reader, _store = world
    [plc] = listing(client, reader, sensor="s1", type="PLC")["items"]
    response = client.get(f"{API}/devices/{plc['id']}", headers=reader)
    assert response.status_code == 200
    d = response.json()
    assert d["facts"] == [{"field": "model", "value": "6ES7 315-2EH14-0AB0", "source": "s7-szl",
                           "ts_ns": T0, "seen": format_iso(T0)}]  # fmt: skip
    assert d["names"] == {"plc-1": "s7-szl"} and d["services"] == ["server:tcp/102/s7comm"]
    assert d["mac_history"][0]["mac"] == "00:00:5e:00:53:01"
    assert d["peer_addresses"] == ["192.0.2.20"] and d["pending_override"] is None
    # alerts of the same sensor with the device's IP as source or destination, newest first
    assert [(a["id"], a["url"]) for a in d["recent_alerts"]] == [
        ("2-s1", "/alerts/2-s1"), ("1-s1", "/alerts/1-s1")]  # fmt: skip
    assert d["recent_alerts"][0]["severity"] == "high"
    [other] = listing(client, reader, sensor="s-2")["items"]  # same IP, other sensor
    assert client.get(f"{API}/devices/{other['id']}", headers=reader).json()[
        "recent_alerts"] == []  # fmt: skip
    assert client.get(f"{API}/devices/999999", headers=reader).status_code == 404
    assert client.get(f"{API}/devices/nope", headers=reader).status_code == 422
    assert client.get(f"{API}/devices").status_code == 401


def test_override_is_a_command_audited_and_pending_until_the_sensor_carries_it(world):
    client, admin, reader, store = world
    [hmi] = listing(client, reader, sensor="s1", new="true")["items"]
    url = f"{API}/devices/{hmi['id']}"
    body = {"name": "hmi-<b>1</b>", "purdue_level": 3}
    assert client.patch(url, json=body, headers=reader).status_code == 403
    response = client.patch(url, json=body, headers=admin)
    assert response.status_code == 200, response.text
    d = response.json()
    assert d["name"] == "hmi-<b>1</b>" and d["purdue_level"] == 3
    assert d["type"] == "HMI/SCADA client"  # not given: unchanged
    pending = d["pending_override"]
    assert pending["set"] == body and pending["by"] == "token:alice"
    assert pending["state"] == "pending" and d["overrides"]["name"] == "hmi-<b>1</b>"
    with store.session() as s:
        [cmd] = s.scalars(select(Command).where(Command.kind == "device_override")).all()
        assert cmd.sensor == "s1" and cmd.status == "pending"
        assert cmd.params == {"device_id": 2, "overrides": body}
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "device_override")).one()
        assert audit.actor == "token:alice" and audit.detail["before"] == {
            "name": None, "purdue_level": None}  # fmt: skip
    # the list shows it too, and the alert records name the device by it
    assert listing(client, reader, search="hmi-<b>")["items"][0]["id"] == hmi["id"]
    alert = client.get(f"{API}/alerts/1-s1", headers=reader).json()
    assert alert["source_device_id"] == hmi["id"] and alert["source_device"] == "hmi-<b>1</b>"
    # the sensor's next snapshot carries it: applied
    seed(store, "s1", [device(2, "192.0.2.20", name="hmi-<b>1</b>", purdue_level=3,
                              type="HMI/SCADA client",
                              overrides={"name": "hmi-<b>1</b>", "purdue_level": 3})])  # fmt: skip
    d = client.get(url, headers=reader).json()
    assert d["pending_override"] is None
    assert d["overrides"]["central"]["state"] == "applied"
    assert d["overrides"]["central"]["by"] == "token:alice"
    # null clears
    d = client.patch(url, json={"name": None}, headers=admin).json()
    assert d["pending_override"]["set"] == {"name": None}
    assert d["overrides"]["name"] is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"colour": "red"}, 422),
        ({"type": "Toaster"}, 422),
        ({"purdue_level": 6}, 422),
        ({"purdue_level": "1"}, 422),
        ({"name": ""}, 422),
        ({"name": "x" * 256}, 422),
        ({}, 400),
    ],
)
def test_bad_overrides_are_refused_with_the_reason(world, body, status):
    client, admin, reader, store = world
    [plc] = listing(client, reader, sensor="s1", type="PLC")["items"]
    response = client.patch(f"{API}/devices/{plc['id']}", json=body, headers=admin)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    with store.session() as s:
        assert s.scalars(select(Command).where(Command.kind == "device_override")).all() == []
    missing = client.patch(f"{API}/devices/424242", json={"name": "x"}, headers=admin)
    assert missing.status_code == 404


def test_override_with_the_portals_cookie_needs_csrf(world):
    client, _admin, reader, store = world
    user(store, "carol", "admin")
    csrf = sign_in(client, "carol")
    [plc] = listing(client, reader, sensor="s1", type="PLC")["items"]
    url = f"{API}/devices/{plc['id']}"
    assert client.patch(url, json={"type": "RTU/outstation"}).status_code == 403  # no CSRF
    response = client.patch(url, json={"type": "RTU/outstation"}, headers=csrf)
    assert response.status_code == 200, response.text
    d = response.json()
    assert d["type"] == "RTU/outstation" and d["type_reason"] == "set by a user"
    assert d["pending_override"]["by"] == "user:carol"


def test_alert_records_link_devices_resolved_at_read_time(world):
    client, _admin, reader, store = world
    rows = {a["id"]: a for a in client.get(f"{API}/alerts", headers=reader).json()["alerts"]}
    plc = listing(client, reader, sensor="s1", type="PLC")["items"][0]
    assert rows["2-s1"]["source_device_id"] == plc["id"]
    assert rows["2-s1"]["source_device"] == "plc-1"
    assert rows["2-s1"]["destination_device_id"] is None  # 203.0.113.9: no device
    assert rows["2-s1"]["destination_device"] is None
    assert rows["3-s1"]["destination_device_id"] is None
    # a device learned after the alert links it on the next read
    seed(store, "s1", [device(9, "192.0.2.99", vendor="Moxa")])
    detail = client.get(f"{API}/alerts/3-s1", headers=reader).json()
    assert detail["destination_device_id"] is not None
    assert detail["destination_device"] == "192.0.2.99"  # no name: its address


def test_store_upsert_updates_and_forgets(central_store):  # noqa: F811
    add_sensor(central_store, "s1")
    seed(central_store, "s1", [PLC])
    seed(central_store, "s1", [device(1, "192.0.2.10", vendor="Other", peers=7)])
    with central_store.session() as s:
        rows, total = device_store.list_devices(s, device_store.DeviceQuery())
        assert total == 1 and rows[0].vendor == "Other" and rows[0].peers == 7
        assert device_store.delete_device(s, "s1", 1) == 1
        assert device_store.list_devices(s, device_store.DeviceQuery())[1] == 0


def test_the_cli_offers_every_sort_key_central_has():
    from otwatch.cli.central_devices import SORTS

    assert sorted(SORTS) == sorted(device_store.SORT_KEYS)


def test_two_instances_inserting_the_same_new_device_both_land(central_store):  # noqa: F811
    """Central instance A inserts a new device and has not committed yet when instance B's
    batch carries the same device: B waits for A's commit and updates A's row instead of
    failing its whole batch on the unique key."""
    import threading

    from otwatch.central.store.models_devices import CentralDevice

    older = device(7, "192.0.2.77", vendor="Older Vendor")
    newer = device(7, "192.0.2.77", vendor="Newer Vendor", protocols=["modbus"])
    first_in, errors = threading.Event(), []

    def instance_b() -> None:
        first_in.wait(10)
        try:
            with central_store.session() as s:
                device_store.upsert_device(s, "s9", newer, T0 + SEC)
        except Exception as exc:  # the assertion below names it
            errors.append(exc)

    b = threading.Thread(target=instance_b)
    b.start()
    with central_store.session() as s:
        device_store.upsert_device(s, "s9", older, T0)
        first_in.set()
        b.join(0.5)  # B now waits for this transaction (row or database lock)
        assert b.is_alive() or errors, "B did not wait for A's uncommitted insert"
    b.join(20)
    assert not b.is_alive() and errors == []
    with central_store.session() as s:
        rows = list(s.scalars(select(CentralDevice).where(CentralDevice.sensor == "s9")))
    assert [(r.vendor, r.protocols, r.received_ns) for r in rows] == [
        ("Newer Vendor", ["modbus"], T0 + SEC)
    ]
