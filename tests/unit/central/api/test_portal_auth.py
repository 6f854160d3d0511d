"""Portal sign-in on a real central database (SQLite and PostgreSQL) through the FastAPI
app: sessions (cookie, idle and absolute expiry with an injected clock, server-side
sign-out), throttled failures, CSRF, roles for users, preferences and security headers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from otwatch.central.api import LocalCommander, create_app
from otwatch.central.api.headers import CSP
from otwatch.central.api.sessions import COOKIE, PortalState
from otwatch.central.api.throttle import LoginThrottle, ThrottleRule
from otwatch.central.node import CentralNode
from otwatch.central.pcapstore import PcapStore
from otwatch.central.store.models import Alert, AuditEvent, Command
from otwatch.central.store.models_portal import PortalSession
from otwatch.central.store.portal_sessions import SessionLimits
from otwatch.central.store.users import reset_password, set_disabled, set_role
from tests.centralapi import add_alerts, snapshot, token
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.portalauth import PASSWORD, Clock, sign_in, user

API = "/api/v1"
MIN = 60
WRONG = {"detail": "wrong user name or password"}
MUTATING = {"post", "put", "patch", "delete"}


@pytest.fixture
def portal(central_store, tmp_path):  # noqa: F811
    add_alerts(central_store, "s1", [snapshot(1), snapshot(2, learnable=False)])
    clock = Clock()
    state = PortalState(
        limits=SessionLimits(idle_ns=10 * MIN * 10**9, absolute_ns=60 * MIN * 10**9),
        throttle=LoginThrottle(
            per_user=ThrottleRule(free=3, base_s=10), per_address=ThrottleRule(free=6, base_s=10)
        ),
        clock=clock,
    )
    engine = CentralNode(central_store, pcap_sink=PcapStore(central_store, tmp_path / "pcap"))
    app = create_app(central_store, LocalCommander(engine), engine.pcap_sink, portal=state)
    user(central_store, "alice", "admin")
    user(central_store, "rita", "reader")
    return app, central_store, clock


def client_of(app, https: bool = False) -> TestClient:
    return TestClient(app, base_url="https://testserver" if https else "http://testserver")


def sessions(store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(PortalSession))


def test_sign_in_sets_a_strict_http_only_cookie_and_whoami_knows_the_user(portal):
    app, store, _clock = portal
    client = client_of(app)
    response = client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "alice" and body["role"] == "admin" and len(body["csrf_token"]) > 30
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http: a Secure cookie would never return
    me = client.get(f"{API}/whoami").json()
    assert me == {
        "name": "alice",
        "role": "admin",
        "kind": "user",
        "csrf_token": body["csrf_token"],
    }
    with store.session() as s:  # only the digest of the session id is stored
        [stored] = s.scalars(select(PortalSession.id_sha256))
    assert stored != client.cookies[COOKIE] and len(stored) == 64
    tls = client_of(app, https=True)
    cookie = tls.post("/auth/login", json={"username": "rita", "password": PASSWORD})
    assert "; secure" in cookie.headers["set-cookie"].lower()
    assert tls.get(f"{API}/whoami").json()["name"] == "rita"


def test_wrong_password_unknown_and_disabled_users_get_the_same_answer(portal):
    app, store, _clock = portal
    client = client_of(app)
    with store.session() as s:
        set_disabled(s, "rita")
    for name, password in (("alice", "wrong password"), ("nobody", PASSWORD), ("rita", PASSWORD)):
        response = client.post("/auth/login", json={"username": name, "password": password})
        assert (response.status_code, response.json()) == (401, WRONG), name
        assert "set-cookie" not in response.headers
    assert sessions(store) == 0
    assert client.get(f"{API}/alerts").status_code == 401
    bad = client.post("/auth/login", json={"username": "alice", "password": "x", "extra": 1})
    assert bad.status_code == 422


def test_repeated_failures_are_slowed_per_user_and_per_address(portal):
    app, _store, clock = portal
    client = client_of(app)

    def attempt(name: str, password: str = "wrong password"):
        return client.post("/auth/login", json={"username": name, "password": password})

    for _ in range(3):
        assert attempt("alice").status_code == 401
    locked = attempt("alice", PASSWORD)  # even the right password waits
    assert locked.status_code == 429 and locked.headers["retry-after"] == "10"
    assert "too many failed sign-ins" in locked.json()["detail"]
    clock.advance(10)
    assert attempt("alice").status_code == 401  # fourth failure: the wait doubles
    clock.advance(19)
    assert attempt("alice", PASSWORD).status_code == 429
    clock.advance(1)
    assert attempt("alice", PASSWORD).status_code == 200
    assert attempt("alice").status_code == 401  # a success started the count again
    # per address: failures spread over many names still slow this client down (5 so far)
    assert attempt("n1").status_code == 401
    assert attempt("rita", PASSWORD).status_code == 429
    clock.advance(10)
    assert attempt("rita", PASSWORD).status_code == 200


def test_sessions_end_after_idle_and_absolute_limits(portal):
    app, store, clock = portal
    client = client_of(app)
    sign_in(client, "alice")
    for _ in range(5):  # used every 9 minutes: the idle limit (10 min) keeps moving
        clock.advance(9 * MIN)
        assert client.get(f"{API}/whoami").status_code == 200
    clock.advance(9 * MIN)  # 54 min
    assert client.get(f"{API}/whoami").status_code == 200
    clock.advance(6 * MIN)  # 60 min: the absolute limit, however busy the user
    gone = client.get(f"{API}/whoami")
    assert gone.status_code == 401 and "sign in again" in gone.json()["detail"]
    assert sessions(store) == 0  # the expired session was deleted when seen
    sign_in(client, "alice")
    clock.advance(10 * MIN)  # idle
    assert client.get(f"{API}/whoami").status_code == 401


def test_sign_out_ends_the_session_on_the_server(portal):
    app, store, _clock = portal
    client = client_of(app)
    csrf = sign_in(client, "alice")
    stolen = client.cookies[COOKIE]
    assert client.post("/auth/logout").status_code == 403  # no CSRF token
    out = client.post("/auth/logout", headers=csrf)
    assert out.status_code == 204
    assert (
        f'{COOKIE}=""' in out.headers["set-cookie"]
        or "max-age=0" in out.headers["set-cookie"].lower()
    )
    assert sessions(store) == 0
    replay = client_of(app)
    replay.cookies.set(COOKIE, stolen)
    assert replay.get(f"{API}/whoami").status_code == 401


def test_disabling_or_resetting_a_user_ends_their_sessions_and_roles_apply_at_once(portal):
    app, store, _clock = portal
    client = client_of(app)
    sign_in(client, "rita")
    with store.session() as s:
        set_role(s, "rita", "admin")
    assert client.get(f"{API}/whoami").json()["role"] == "admin"
    with store.session() as s:
        reset_password(s, "rita", "another password")
    assert client.get(f"{API}/whoami").status_code == 401
    sign_in(client, "rita", "another password")
    with store.session() as s:
        set_disabled(s, "rita")
    assert client.get(f"{API}/whoami").status_code == 401


def _state(store) -> tuple:
    with store.session() as s:
        return (
            tuple(s.scalars(select(Alert.status).order_by(Alert.id))),
            s.scalar(select(func.count()).select_from(Command)),
        )


def test_changes_with_the_cookie_need_the_csrf_token(portal):
    app, store, _clock = portal
    client = client_of(app)
    csrf = sign_in(client, "alice")
    before = _state(store)
    body = {"ids": ["1-s1"], "status": "active"}
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": ""}):
        forged = client.post(f"{API}/alerts/status", json=body, headers=headers)
        assert (forged.status_code, forged.json()) == (
            403,
            {"detail": "CSRF token missing or wrong"},
        )
    # a cross-site form post: no custom header can be set, the body is form-encoded
    form = client.post(f"{API}/alerts/status", data={"ids": "1-s1", "status": "active"})
    assert form.status_code == 403
    assert _state(store) == before
    done = client.post(f"{API}/alerts/status", json=body, headers=csrf)
    assert done.status_code == 200 and done.json()["results"][0]["outcome"] == "applied"
    with store.session() as s:
        actors = set(s.scalars(select(AuditEvent.actor).where(AuditEvent.action == "status")))
    assert actors == {"user:alice"}
    # a token needs no CSRF token (no cookie, nothing a browser sends by itself)
    admin = {"Authorization": f"Bearer {token(store, 'ops', 'admin')}"}
    body = {"ids": ["1-s1"], "status": "closed"}
    assert client_of(app).post(f"{API}/alerts/status", json=body, headers=admin).status_code == 200


def test_a_reader_user_is_refused_every_admin_action(portal):
    app, store, _clock = portal
    client = client_of(app)
    csrf = sign_in(client, "rita")
    before = _state(store)
    paths = app.openapi()["paths"]
    tried = []
    for path, operations in paths.items():
        if not path.startswith(API) or path.startswith(f"{API}/prefs"):
            continue
        for method in set(operations) & MUTATING:
            url = path.replace("{alert_id}", "1-s1").replace("{action}", "learn")
            body = {"ids": ["1-s1"], "status": "closed", "severity": "low", "text": "x"}
            response = client.request(method, url, json=body, headers=csrf)
            tried.append(url)
            if url.endswith("/alerts/learn") and path.endswith("{action}"):
                continue  # the same URL as the learn route
            assert response.status_code == 403, (method, url, response.text)
            assert "has role reader" in response.json()["detail"]
    assert {f"{API}/alerts/status", f"{API}/alerts/severity", f"{API}/alerts/1-s1/pcap"} <= set(
        tried
    )
    assert _state(store) == before
    assert client.get(f"{API}/pcap/00000000-0000-4000-8000-000000000000").status_code == 403
    assert client.get(f"{API}/alerts").status_code == 200  # readers see everything


def test_preferences_belong_to_the_signed_in_user(portal):
    app, store, _clock = portal
    alice, rita = client_of(app), client_of(app)
    csrf_a, csrf_r = sign_in(alice, "alice"), sign_in(rita, "rita")
    columns = ["severity", "name", "protocol"]
    assert alice.get(f"{API}/prefs/alert_columns").json() == {"value": None}
    put = alice.put(f"{API}/prefs/alert_columns", json={"value": columns}, headers=csrf_a)
    assert put.status_code == 200
    assert alice.get(f"{API}/prefs/alert_columns").json() == {"value": columns}
    assert rita.get(f"{API}/prefs/alert_columns").json() == {"value": None}
    assert rita.put(f"{API}/prefs/alert_columns", json={"value": [1]}).status_code == 403
    big = rita.put(f"{API}/prefs/x", json={"value": "a" * (17 << 10)}, headers=csrf_r)
    assert big.status_code == 400 and "at most 16384" in big.json()["detail"]
    bad = rita.put(f"{API}/prefs/Bad%20Key", json={"value": 1}, headers=csrf_r)
    assert bad.status_code == 400
    reader_token = {"Authorization": f"Bearer {token(store, 'bot', 'reader')}"}
    assert client_of(app).get(f"{API}/prefs/alert_columns", headers=reader_token).status_code == 403


def test_every_response_carries_the_security_headers(portal):
    app, store, _clock = portal
    client = client_of(app)
    reader = {"Authorization": f"Bearer {token(store, 'bot', 'reader')}"}
    responses = [
        client.get(f"{API}/alerts"),  # 401
        client.get(f"{API}/alerts", headers=reader),
        client.get(f"{API}/alerts/export.csv", headers=reader),
        client.post("/auth/login", json={"username": "x", "password": "y"}),
        client.get("/nowhere"),
    ]
    for response in responses:
        headers = response.headers
        assert headers["content-security-policy"] == CSP
        assert "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["cache-control"] == "no-store"
    assert client.get("/docs").status_code == 404  # Swagger UI needs a CDN: not served
    assert client.get("/openapi.json").status_code == 401
    assert "paths" in client.get("/openapi.json", headers=reader).json()
