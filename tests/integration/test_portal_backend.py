"""The portal's API end to end: a real ``otwatch central run --listen`` on a loopback port,
a real Mosquitto and the sensor's ``otwatch sync run``; users made with the CLI sign in over
HTTP; a comment and a status change by a signed-in admin reach the sensor's own store with
the user's name; a reader is refused; sign-out ends the session on the server."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from otwatch.agent.store.models import Alert as SensorAlert
from otwatch.agent.store.models import AuditEvent as SensorAudit
from tests.integration.central_procs import CentralProcess, otwatch, sensor_with_pcaps
from tests.integration.mqtt_broker import make_broker, mosquitto  # noqa: F401
from tests.integration.sync_procs import SensorDaemon, wait_until

API = "/api/v1"
PASSWORD = "portal password 1"


def sensor_comments(store, alert_id: int) -> list[tuple[str, str, str]]:
    with store.session() as s:
        rows = s.scalars(
            select(SensorAudit).where(
                SensorAudit.alert_id == alert_id, SensorAudit.action == "comment"
            )
        )
        return [(r.actor, r.origin, r.detail.get("text")) for r in rows]


@pytest.fixture
def plant(tmp_path, mosquitto):  # noqa: F811
    store = sensor_with_pcaps(tmp_path / "sensor")
    db_url = f"sqlite:///{tmp_path / 'central' / 'central.db'}"
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    for name, role in (("alice", "admin"), ("rita", "reader")):
        made = otwatch(
            "central", "user", "add", name, "--role", role, "--password-file", str(secret),
            "--db", db_url,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
    central = CentralProcess(tmp_path / "central", db_url, mosquitto.url).start()
    daemon = SensorDaemon(tmp_path / "sensor", mosquitto.url).start()
    yield store, central
    for part in (central, daemon):
        part.stop()
    store.close()


def sign_in(url: str, name: str) -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client(base_url=url, timeout=30)
    answer = client.post("/auth/login", json={"username": name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return client, {"X-CSRF-Token": answer.json()["csrf_token"]}


def test_signed_in_users_triage_and_comment_through_to_the_sensor(plant):
    store, central = plant
    alice, csrf = sign_in(central.url, "alice")
    wait_until(lambda: alice.get(f"{API}/alerts").json()["total"] == 3, 30, "3 alerts centrally")
    text = "Planned PLC maintenance <script>alert(1)</script>; ticket 42"
    forged = alice.post(f"{API}/alerts/comment", json={"ids": ["1-s1"], "text": text})
    assert forged.status_code == 403  # no CSRF token: nothing is sent
    said = alice.post(f"{API}/alerts/comment", json={"ids": ["1-s1"], "text": text}, headers=csrf)
    assert said.status_code == 200 and said.json()["results"][0]["outcome"] == "applied"
    closed = alice.post(
        f"{API}/alerts/status", json={"ids": ["1-s1"], "status": "active"}, headers=csrf
    )
    assert closed.json()["results"][0]["outcome"] == "applied"
    wait_until(lambda: sensor_comments(store, 1), 30, "the comment on the sensor")
    assert sensor_comments(store, 1) == [("central:user:alice", "central", text)]

    def sensor_status() -> tuple[str, str] | None:
        with store.session() as s:
            status = s.scalar(select(SensorAlert.status).where(SensorAlert.id == 1))
            actor = s.scalar(
                select(SensorAudit.actor).where(
                    SensorAudit.alert_id == 1, SensorAudit.action == "status"
                )
            )
        return status, actor

    wait_until(lambda: sensor_status()[0] == "active", 30, "the sensor to set alert 1 active")
    assert sensor_status() == ("active", "central:user:alice")
    details = alice.get(f"{API}/alerts/1-s1").json()
    assert [(c["author"], c["text"]) for c in details["comments"]] == [("user:alice", text)]

    rita, rita_csrf = sign_in(central.url, "rita")
    refused = rita.post(
        f"{API}/alerts/comment", json={"ids": ["2-s1"], "text": "mine"}, headers=rita_csrf
    )
    assert refused.status_code == 403
    assert rita.get(f"{API}/alerts/2-s1").json()["comments"] == []
    assert rita.post("/auth/logout", headers=rita_csrf).status_code == 204
    assert rita.get(f"{API}/whoami").status_code == 401
    headers = alice.get(f"{API}/alerts").headers
    assert headers["cache-control"] == "no-store" and headers["x-content-type-options"] == "nosniff"
