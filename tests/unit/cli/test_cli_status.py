"""``otwatch status`` on a real sensor store (alerts, outbox, ring, saved daemon states) and on
a real central database (SQLite and PostgreSQL), as a table and as JSON."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from otwatch.agent.capture.status import CAPTURE_STATE
from otwatch.agent.sensor import resolve_identity
from otwatch.agent.store.baseline import save_learning_ns
from otwatch.agent.store.state import put_state
from otwatch.central.health import central_health
from otwatch.central.store.sensors import touch_sensor
from otwatch.cli.main import cli
from otwatch.health import sensor_health
from otwatch.sync.tracker import SyncTracker
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.factories import SEC
from tests.integration.central_procs import sensor_with_pcaps


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout  # not stderr: a log line another test left behind must not mix in


@pytest.fixture
def sensor(tmp_path):
    data = tmp_path / "sensor"
    store = sensor_with_pcaps(data, alerts=3)
    with store.session() as s:
        put_state(
            s,
            CAPTURE_STATE,
            {
                "state": "capturing",
                "updated_ns": time.time_ns(),
                "workers": 2,
                "interfaces": {
                    "eth1": {
                        "received": 1200,
                        "kernel_packets": 1210,
                        "kernel_drops": 10,
                        "rate_pps": 400,
                    },
                    "eth2": {"received": 50, "kernel_packets": 50, "kernel_drops": 0},
                },
                "pipeline": {"not_analysed": 7},
                "notes": [],
            },
        )
        save_learning_ns(s, 90 * SEC)
        resolve_identity(s, "s1", "plant", "cell-1")
    yield data, store
    store.close()


def test_sensor_health_figures(sensor):
    _, store = sensor
    tracker = SyncTracker("127.0.0.1:1883")
    tracker.connected(time.time_ns())
    assert tracker.acked(2, time.time_ns() - 5 * SEC)
    assert not tracker.acked(2, time.time_ns())  # not forward: no change
    tracker.save(store)
    h = sensor_health(store)
    assert h["sensor"]["id"] == "s1"
    assert h["learning"] == {"active": True, "remaining_s": 90.0}
    assert h["capture"]["state"] == "capturing" and h["capture"]["workers"] == 2
    assert h["capture"]["interfaces"]["eth1"] == {
        "received": 1200, "kernel_drops": 10, "rate_pps": 400
    }  # fmt: skip
    assert h["capture"]["received"] == 1250 and h["capture"]["kernel_drops"] == 10
    assert h["capture"]["not_analysed"] == 7
    assert sum(h["alerts"].values()) == 3
    assert h["outbox"]["depth"] == 3  # nothing acknowledged in the store yet
    assert h["sync"]["state"] == "connected" and h["sync"]["broker"] == "127.0.0.1:1883"
    assert 4 <= h["sync"]["last_ack_age_s"] < 60
    assert h["ring"]["bytes"] > 0 and h["ring"]["segments"] >= 1


def test_saved_states_that_stopped_updating_are_stale(sensor):
    _, store = sensor
    old = time.time_ns() - 3600 * SEC
    with store.session() as s:
        put_state(s, CAPTURE_STATE, {"state": "capturing", "updated_ns": old})
    tracker = SyncTracker("b:1")
    tracker.connected(old)
    tracker.save(store, now=old)
    h = sensor_health(store)
    assert h["capture"]["state"] == "stale" and h["sync"]["state"] == "stale"
    tracker.state = "stopped"
    tracker.save(store, now=old)
    assert sensor_health(store)["sync"]["state"] == "stopped"  # stopped cleanly: not stale


def test_tracker_resume_keeps_the_last_ack(store):
    first = SyncTracker("b:1")
    first.acked(5, 123 * SEC)
    first.save(store)
    again = SyncTracker.resume(store, "b:1", acked_seq=5)
    assert again.last_ack_ns == 123 * SEC and again.acked_seq == 5


def test_status_table_and_json(sensor):
    data, _ = sensor
    text = run("--data-dir", str(data), "status")
    assert "sensor    s1 (site plant, zone cell-1)" in text
    assert "learning  on: 1m 30s of traffic left" in text
    assert "capturing" in text and "eth1" in text and "1200" in text and "400" in text
    assert "3 new, 0 active, 0 closed" in text
    assert "outbox    3 event(s) pending; no ack from central yet" in text
    assert "sync      never run" in text
    as_json = json.loads(run("--data-dir", str(data), "status", "--format", "json"))
    assert as_json["alerts"] == {"new": 3, "active": 0, "closed": 0}
    assert as_json["capture"]["interfaces"]["eth2"]["received"] == 50


def test_central_status_from_the_database(central_store, central_url):  # noqa: F811
    now = time.time_ns()
    with central_store.session() as s:
        touch_sensor(s, "plant-a", now, online=True, health={"outbox_depth": 12})
        touch_sensor(s, "plant-b", now - 3600 * SEC, online=True, health={})
        touch_sensor(s, "plant-c", now - 60 * SEC, online=False, health={"outbox_depth": 0})
    as_json = json.loads(run("status", "--db", central_url, "--format", "json"))
    states = {r["sensor"]: (r["state"], r["outbox_depth"]) for r in as_json["sensors"]}
    assert states == {
        "plant-a": ("online", 12),
        "plant-b": ("silent", None),  # online flag, but nothing heard for an hour
        "plant-c": ("offline", 0),
    }
    assert (as_json["online"], as_json["silent"], as_json["offline"]) == (1, 1, 1)
    text = run("status", "--db", central_url)
    assert text.startswith("sensors: 3 (1 online, 1 silent, 1 offline)")
    assert "plant-b" in text and "1h 0m" in text


def test_central_health_from_api_rows():
    rows = [{"sensor": "x", "online": True, "last_seen": "2027-01-01T00:00:00Z", "health": {}}]
    h = central_health(rows, now=1_798_761_610 * SEC)
    assert h["sensors"][0]["last_seen_age_s"] == 10.0 and h["online"] == 1
