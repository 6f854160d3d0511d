"""The portal's page routes without a browser: redirects to sign-in (with the page to come
back to), a safe ``next``, pages for a signed-in user carrying the CSRF token and role,
assets served only from the package's fixed list with their media types, and templates
escaping what comes from the URL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from otwatch.central.api import LocalCommander, create_app
from otwatch.central.node import CentralNode
from otwatch.central.portal.routes import safe_next
from otwatch.central.store.db import open_central_store
from tests.portalauth import sign_in, user


@pytest.fixture
def client(tmp_path):
    store = open_central_store(f"sqlite:///{tmp_path / 'central.db'}")
    app = create_app(store, LocalCommander(CentralNode(store)))
    user(store, "alice", "admin")
    user(store, "rita", "reader")
    yield TestClient(app)
    store.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "/alerts"),
        ("/sensors", "/sensors"),
        ("/alerts?severity=high&sel=1-s1", "/alerts?severity=high&sel=1-s1"),
        ("//evil.example/x", "/alerts"),
        ("/\\evil.example", "/alerts"),
        ("https://evil.example/", "/alerts"),
        ("javascript:alert(1)", "/alerts"),
        ("/login?next=/x", "/alerts"),
        ("/alerts\r\nSet-Cookie: x=1", "/alerts"),
    ],
)
def test_next_is_a_local_page_only(value, expected):
    assert safe_next(value) == expected


def test_pages_redirect_to_sign_in_and_back(client):
    for path in ("/alerts?severity=high", "/alerts/1-s1", "/sensors", "/devices?type=PLC",
                 "/devices/7"):  # fmt: skip
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=%2F")
    assert client.get("/", follow_redirects=False).headers["location"] == "/alerts"
    page = client.get("/login?next=/sensors")
    assert page.status_code == 200
    assert 'data-next="/sensors"' in page.text
    assert 'data-next="/alerts"' in client.get("/login?next=//evil.example").text


def test_signed_in_pages_carry_role_and_csrf_and_escape_the_url(client):
    csrf = sign_in(client, "rita")["X-CSRF-Token"]
    page = client.get("/alerts")
    assert page.status_code == 200
    assert f'<meta name="csrf-token" content="{csrf}">' in page.text
    assert 'data-role="reader"' in page.text
    assert '<script type="module" src="/static/alerts.js' in page.text
    assert "<script>" not in page.text and " style=" not in page.text
    details = client.get("/alerts/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert "<img src=x" not in details.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in details.text
    assert client.get("/login", follow_redirects=False).headers["location"] == "/alerts"
    assert "bulk-learn" not in page.text  # readers get no bulk controls
    sign_in(client, "alice")
    assert "bulk-learn" in client.get("/alerts").text


def test_assets_are_a_fixed_list(client):
    script = client.get("/static/alerts.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/portal.css").headers["content-type"].startswith("text/css")
    for bad in ("/static/../routes.py", "/static/%2e%2e/routes.py", "/static/nope.js",
                "/static/templates/base.html"):  # fmt: skip
        assert client.get(bad).status_code == 404, bad


def test_no_asset_uses_inner_html_or_inline_handlers():
    from otwatch.central.portal.routes import _ASSETS

    for name, path in _ASSETS.items():
        text = path.read_text()
        assert "innerHTML" not in text and "outerHTML" not in text, name
        assert "insertAdjacentHTML" not in text and "document.write" not in text, name
        assert "eval(" not in text and "new Function" not in text, name


def test_device_pages_carry_the_nav_and_escape_the_url(client):
    sign_in(client, "rita")
    grid = client.get("/devices")
    assert grid.status_code == 200
    assert '<script type="module" src="/static/devices.js' in grid.text
    assert '<a href="/devices" aria-current="page">Devices</a>' in grid.text
    device = client.get("/devices/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert device.status_code == 200
    assert "<img src=x" not in device.text
    assert 'data-device-id="&lt;img src=x onerror=alert(1)&gt;"' in device.text
    assert '<script type="module" src="/static/device.js' in device.text
    assert 'href="/devices"' in client.get("/alerts").text  # the nav on every page
