"""Issue 15, item 5: unification cannot be hijacked. Against a real ``otwatch central run``
(SQLite) on a real Mosquitto, with forged sensors: a sensor that claims another zone in a
later birth stays where central placed it (claim ignored, logged), so its alerts are not
unified with that zone's; only ``otwatch central sensor set`` moves it; and a PCAP request
for an alert goes to the sensor that raised it, even when that alert is shown as part of
another sensor's unified alert."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, func, select

from otwatch.central.store.models import Alert, CentralState
from otwatch.central.store.models_api import AlertMember
from otwatch.demo.parts import wait_until
from tests.integration.central_procs import CentralProcess, otwatch
from tests.integration.mqtt_broker import make_broker, mosquitto  # noqa: F401
from tests.security.forge import Peer, api, birth, central_connected, event_batch, snapshot


@pytest.fixture
def plant(tmp_path, mosquitto):  # noqa: F811
    db_url = f"sqlite:///{tmp_path / 'central' / 'central.db'}"
    made = otwatch("central", "token", "create", "--name", "ops", "--role", "admin",
                   "--db", db_url)  # fmt: skip
    assert made.returncode == 0, made.stderr
    central = CentralProcess(tmp_path / "central", db_url, mosquitto.url).start()
    central_connected(central)
    peer = Peer(mosquitto.port)
    peer.subscribe("otwatch/v1/+/down/#")
    yield central, peer, made.stdout.strip()
    peer.close()
    central.stop()


def _db(central: CentralProcess, query):
    engine = create_engine(central.db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(query).all()
    finally:
        engine.dispose()


def _zone(central: CentralProcess, sensor: str, alert_id: int) -> str | None:
    rows = _db(
        central, select(Alert.zone).where(Alert.sensor == sensor, Alert.alert_id == alert_id)
    )
    return rows[0][0] if rows else None


def _unified_through(central: CentralProcess, sensor: str, alert_id: int) -> bool:
    """The unification job has looked at this alert."""
    rows = _db(central, select(Alert.id).where(Alert.sensor == sensor, Alert.alert_id == alert_id))
    hw = _db(central, select(CentralState.value).where(CentralState.key == "unify_hw"))
    return bool(rows and hw and hw[0][0]["v"] >= rows[0][0])


def _births_answered(peer: Peer, sensor: str, count: int) -> bool:
    return sum(t.startswith(f"otwatch/v1/{sensor}/down/birth") for t, _ in peer.received) >= count


def test_a_zone_claim_is_ignored_and_pcap_requests_go_to_the_evidence(plant):
    central, peer, admin = plant
    e1, e2 = str(uuid.uuid4()), str(uuid.uuid4())
    peer.publish(*birth("s1", e1, site="plant", zone="A"))
    peer.publish(*birth("s2", e2, site="plant", zone="B"))
    wait_until(lambda: _births_answered(peer, "s2", 1), 20, "central to know s2")
    # s2 now claims s1's zone (its own topic: the ACL allows it), and so do its snapshots
    peer.publish(*birth("s2", e2, site="plant", zone="A"))
    wait_until(lambda: _births_answered(peer, "s2", 2), 20, "central to see the claim")
    peer.publish(*event_batch("s2", e2, [snapshot(1, zone="A")]))  # first: the lower id
    wait_until(lambda: _zone(central, "s2", 1), 20, "s2's alert")
    peer.publish(*event_batch("s1", e1, [snapshot(1, zone="A")]))
    wait_until(lambda: _unified_through(central, "s1", 1), 20, "a unification pass")
    assert _zone(central, "s2", 1) == "B"  # central's placement, not the claim
    assert _db(central, select(func.count()).select_from(AlertMember)) == [(0,)]
    code, sensors = api(central.url, admin, "GET", "/sensors")
    assert {s["sensor"]: s["zone"] for s in sensors} == {"s1": "A", "s2": "B"}
    assert "security event placement_claim: sensor s2 claims site 'plant' zone 'A'" in (
        central.log.read_text()
    )

    # an administrator puts s2 into zone A: its alerts move, new ones unify
    moved = otwatch("central", "sensor", "set", "s2", "--site", "plant", "--zone", "A",
                    "--db", central.db_url)  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert _zone(central, "s2", 1) == "A"
    peer.publish(*event_batch("s2", e2, [snapshot(2)], first_seq=2))
    wait_until(lambda: _zone(central, "s2", 2), 20, "s2's second alert")
    peer.publish(*event_batch("s1", e1, [snapshot(2)], first_seq=2))
    # wait for s1's second alert itself: a pass may first unify the two first alerts (s2 moved
    # into their zone), which a count of members alone would take for this one
    second_of_s1 = (
        select(func.count())
        .select_from(AlertMember)
        .join(Alert, Alert.id == AlertMember.alert_pk)
        .where(Alert.sensor == "s1", Alert.alert_id == 2)
    )
    wait_until(lambda: _db(central, second_of_s1)[0][0] == 1, 20, "unification in the shared zone")
    code, shown = api(central.url, admin, "GET", "/alerts/2-s1")
    assert code == 200 and shown["id"] == "2-s2"  # shown as part of s2's earlier alert

    # the PCAP of s1's alert is s1's evidence: the request goes to s1, not to the primary's s2
    peer.received.clear()
    code, view = api(central.url, admin, "POST", "/alerts/2-s1/pcap")
    assert code == 200 and view["sensor"] == "s1", view
    wait_until(lambda: peer.messages("/s1/down/commands"), 20, "the PCAP command")
    [command] = peer.messages("/s1/down/commands")[0]["commands"]
    assert (command["kind"], command["alert_id"]) == ("pcap", 2)
    assert peer.messages("/s2/down/commands") == []
