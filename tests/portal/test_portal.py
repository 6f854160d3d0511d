"""The web portal in a real headless Chromium against a real central, Mosquitto, sensor agent
and sync daemon (see ``harness``): sign-in, roles and CSRF; the Alerts grid (columns, search,
every filter kind, time range, sorting, paging, group by, URL state, keyboard); the details
pane and page; triage reaching the sensor's own store; PCAP download; CSV export; XSS
payloads staying inert. Each test also fails on any request to another host, any dialog
(a payload that ran) and any script or CSP error (``conftest.Session.check``)."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from otwatch.demo.parts import wait_until
from tests.integration.mqtt_broker import MOSQUITTO
from tests.portal.harness import BULK, CHROMIUM, PLANT_ALERTS, SENSOR, USERS, XSS

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or not Path(MOSQUITTO).exists(),
    reason=f"the portal tests need {CHROMIUM} and {MOSQUITTO} (scripts/ensure-system.sh)",
)

DEFAULT_HEADERS = ["Severity", "Name", "Site", "Engine", "Last detection", "Status",
                   "Source device", "Tactics"]  # fmt: skip
ALL_COLUMNS = ["severity", "name", "site", "engine", "last_detection", "status",
               "source_device", "tactics", "source_address", "destination_address",
               "destination_device", "first_detection", "id", "last_activity", "protocol",
               "sensor", "zone", "category", "type"]  # fmt: skip
SORT_KEYS = {"source_device": "source_address", "destination_device": "destination_address"}


# -- helpers --------------------------------------------------------------------------------


def loaded(page) -> None:
    page.wait_for_selector('body[data-loading="false"]')


def open_alerts(page, query: str = "") -> None:
    page.goto("/alerts" + query)
    loaded(page)


def go(page, url: str) -> None:
    """Another view in the same page, as Back/Forward does it (no reload)."""
    page.evaluate(
        "url => { history.pushState(null, '', url); dispatchEvent(new PopStateEvent('popstate')) }",
        url,
    )
    loaded(page)


def headers(page) -> list[str]:
    texts = page.locator("#grid thead th[data-column] button.sort").all_inner_texts()
    return [t.replace("▲", "").replace("▼", "").strip() for t in texts]


def row_ids(page) -> list[str]:
    return page.locator("#grid tr.row").evaluate_all("rows => rows.map(r => r.dataset.id)")


def total_of(page) -> int:
    text = page.locator("#total").inner_text()
    return int(re.match(r"([\d,]+) alerts?", text)[1].replace(",", ""))


def api_total(plant, params: dict) -> int:
    return plant.api("/alerts?" + urlencode({**params, "limit": 1}))["total"]


def url_params(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def close_results(page) -> list[tuple[str, str, str]]:
    """The rows of the per-alert result dialog, then OK."""
    page.wait_for_selector("#results-dialog[open]")
    rows = page.locator("#results-body tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    page.click("#results-dialog button[value=ok]")
    return [tuple(r) for r in rows]


def sign_in(page, name: str, password: str) -> None:
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("#login-form button[type=submit]")


# -- sign-in, sessions, CSRF, roles ---------------------------------------------------------


def test_sign_in_wrong_password_and_sign_out(session_for, plant):
    s = session_for(None)
    page = s.page
    page.goto("/alerts?severity=high")
    assert urlparse(page.url).path == "/login"
    assert parse_qs(urlparse(page.url).query)["next"] == ["/alerts?severity=high"]

    name, password = USERS["admin"]
    sign_in(page, name, "not the password")
    page.wait_for_selector("#login-error:not([hidden])")
    assert page.inner_text("#login-error") == "Wrong user name or password."
    s.shot("login-wrong-password")

    sign_in(page, name, password)
    page.wait_for_url("**/alerts?severity=high")
    loaded(page)
    assert page.inner_text("#whoami") == name
    assert page.locator("#chips").inner_text().startswith("Severity: High")

    page.click("#sign-out")
    page.wait_for_url("**/login")
    assert s.context.request.get("/api/v1/alerts").status == 401  # ended server-side
    page.goto("/sensors")
    assert urlparse(page.url).path == "/login"


def test_session_expiry_sends_the_page_back_to_sign_in(session_for, plant):
    """The session's idle limit passes (set in central's table, as the clock would): the next
    API call is 401 and the page goes to sign-in, coming back to where it was."""
    from sqlalchemy import update

    from otwatch.central.store.db import open_central_store
    from otwatch.central.store.models_portal import PortalSession
    from otwatch.central.store.portal_sessions import digest

    s = session_for(None)
    name, password = USERS["reader"]
    assert s.context.request.post("/auth/login", data={"username": name, "password": password}).ok
    page = s.page
    open_alerts(page, "?severity=low")
    [cookie] = [c for c in s.context.cookies() if c["name"] == "otwatch_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    store = open_central_store(plant.db_url)
    try:
        with store.session() as db:
            changed = db.execute(
                update(PortalSession)
                .where(PortalSession.id_sha256 == digest(cookie["value"]))
                .values(idle_expires_ns=time.time_ns() - 1)
            ).rowcount
        assert changed == 1
    finally:
        store.close()
    page.click("#refresh")
    page.wait_for_url("**/login?next=*")
    assert url_params(page)["next"] == ["/alerts?severity=low"]
    assert s.context.request.get("/api/v1/whoami").status == 401
    sign_in(page, name, password)
    page.wait_for_url("**/alerts?severity=low")


def test_csrf_refuses_a_forged_post(admin, plant):
    page = admin.page
    open_alerts(page)
    target = plant.plant_alert("controller_reset")["id"]
    answer = page.evaluate(
        """async (id) => {
            const r = await fetch("/api/v1/alerts/status", {
              method: "POST", credentials: "same-origin",
              headers: {"Content-Type": "application/json"},
              body: JSON.stringify({ids: [id], status: "closed"})});
            return [r.status, await r.json()];
        }""",
        target,
    )
    assert answer == [403, {"detail": "CSRF token missing or wrong"}]
    # a plain HTML form posted with the session cookie (what a forged page would send)
    with page.expect_navigation():
        page.evaluate(
            """(id) => {
            const f = document.createElement("form");
            f.method = "post"; f.action = "/api/v1/alerts/status";
            const i = document.createElement("input"); i.name = "ids"; i.value = id; f.append(i);
            document.body.append(f); f.submit();
        }""",
            target,
        )
    assert "CSRF token missing or wrong" in page.content()
    assert plant.sensor_alert(target)["status"] == "new"
    assert plant.api(f"/alerts/{target}")["status"] == "new"


def test_reader_sees_no_change_controls_and_the_server_refuses(reader, plant):
    page = reader.page
    scan = plant.plant_alert("port_scan_detected")["id"]
    open_alerts(page, f"?sel={scan}")
    page.wait_for_selector("#pane h2")
    assert page.locator("#grid input[type=checkbox]").count() == 0
    assert page.locator("#selection-bar").count() == 0
    assert page.locator("#pane select, #pane-status-apply").count() == 0
    assert page.text_content(".topbar .role") == "reader"
    reader.shot("reader-alerts")

    page.goto(f"/alerts/{scan}")
    page.wait_for_selector("#learn")
    assert page.locator("#pcap").count() == 0
    assert page.locator("#detail-status, #detail-severity").count() == 0
    assert page.is_disabled("#learn")
    page.click("#tab-activity")
    assert page.locator("#comment-form").count() == 0

    for path, body in (
        ("/api/v1/alerts/status", {"ids": [scan], "status": "closed"}),
        ("/api/v1/alerts/severity", {"ids": [scan], "severity": "low"}),
        ("/api/v1/alerts/learn", {"ids": [scan]}),
        ("/api/v1/alerts/comment", {"ids": [scan], "text": "hello"}),
        (f"/api/v1/alerts/{scan}/pcap", None),
    ):
        status = page.evaluate(
            """async ([path, body]) => {
                const csrf = document.querySelector('meta[name="csrf-token"]').content;
                const r = await fetch(path, {method: "POST", credentials: "same-origin",
                  headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
                  body: body === null ? undefined : JSON.stringify(body)});
                return r.status;
            }""",
            [path, body],
        )
        assert status == 403, path
    assert plant.sensor_alert(scan)["status"] != "closed"


# -- the grid -------------------------------------------------------------------------------


def test_default_columns_and_total(admin, plant):
    page = admin.page
    open_alerts(page)
    assert headers(page) == DEFAULT_HEADERS
    everything = plant.api("/alerts?limit=1")["total"]
    assert everything >= PLANT_ALERTS + BULK + 1
    assert total_of(page) == everything
    assert len(row_ids(page)) == 50
    assert row_ids(page) == [r["id"] for r in plant.api("/alerts?limit=50")["alerts"]]
    first = page.locator("#grid tr.row").first
    assert first.locator("td[data-column=severity] .sev").count() == 1
    admin.shot("alerts-all")
    scan = plant.plant_alert("port_scan_detected")["id"]
    open_alerts(page, f"?sensor={SENSOR}&sel={scan}")
    page.wait_for_selector("#pane h2")
    admin.shot("alerts-page", docs=True)


def test_edit_columns_is_remembered_for_the_user(admin, session_for):
    page = admin.page
    open_alerts(page)
    try:
        page.click("#edit-columns")
        page.uncheck('#column-list li[data-column="tactics"] input')
        page.check('#column-list li[data-column="protocol"] input')
        up = page.locator(
            '#column-list li[data-column="protocol"] button[aria-label="Move Protocol up"]'
        )
        while up.is_enabled():  # to the top
            up.click()
        admin.shot("edit-columns")
        page.click("#columns-save")
        loaded(page)
        expected = ["Protocol", *[h for h in DEFAULT_HEADERS if h != "Tactics"]]
        assert headers(page) == expected
        # another browser of the same user gets them from the server
        other = session_for("admin").page
        open_alerts(other)
        wait_until(lambda: headers(other) == expected, 5, "the saved columns")
    finally:
        page.click("#edit-columns")
        page.click("#columns-reset")
        page.click("#columns-save")
        loaded(page)
    assert headers(page) == DEFAULT_HEADERS


def test_search(admin, plant):
    page = admin.page
    open_alerts(page)
    page.fill("#search", "Port Scan")
    page.press("#search", "Enter")
    loaded(page)
    assert url_params(page)["search"] == ["Port Scan"]
    names = page.locator("#grid td[data-column=name]").all_inner_texts()
    assert names and all("Port Scan" in n for n in names)
    assert total_of(page) == api_total(plant, {"search": "Port Scan"})


FILTER_CASES = [
    ("severity", "high"),
    ("status", "new"),
    ("engine", "policy_violation"),
    ("category", "Unauthorized Communication Behavior"),
    ("sensor", "s1"),
    ("site", "plant-b"),
    ("zone", "cell-1"),
    ("protocol", "modbus"),
    ("type", "port_scan_detected"),
    ("learnable", "false"),
]


@pytest.mark.parametrize(("kind", "value"), FILTER_CASES, ids=[k for k, _ in FILTER_CASES])
def test_add_filter_of_every_kind(admin, plant, kind, value):
    page = admin.page
    open_alerts(page)
    page.click("#add-filter")
    page.select_option("#filter-kind", kind)
    box = page.locator(f'#filter-values input[type=checkbox][value="{value}"]')
    box.wait_for()
    box.check()
    if kind == "category":
        admin.shot("add-filter")
    page.click("#filter-apply")
    loaded(page)
    assert url_params(page)[kind] == [value]
    assert page.locator(f'#chips li[data-kind="{kind}"]').count() == 1
    expected = api_total(plant, {kind: value})
    assert expected > 0
    assert total_of(page) == expected
    assert set(row_ids(page)) == {
        r["id"] for r in plant.api("/alerts?" + urlencode({kind: value, "limit": 50}))["alerts"]
    }
    page.click(f'#chips li[data-kind="{kind}"] button')
    loaded(page)
    assert kind not in url_params(page)


def test_time_range(admin, plant):
    page = admin.page
    open_alerts(page)
    for choice, delta in (
        ("7d", timedelta(days=7)),
        ("1h", timedelta(hours=1)),
        ("30d", timedelta(days=30)),
    ):
        page.select_option("#range", choice)
        loaded(page)
        since = (datetime.now(UTC) - delta).isoformat().replace("+00:00", "Z")
        assert url_params(page)["range"] == [choice]
        assert total_of(page) == api_total(plant, {"since": since}), choice
    assert total_of(page) > api_total(
        plant, {"since": (datetime.now(UTC) - timedelta(days=7)).isoformat()}
    )
    # custom: the plant's minutes only (its capture is dated 2027-01-01, UTC)
    page.select_option("#range", "custom")
    page.fill("#since", "2027-01-01T00:00:00")
    page.fill("#until", "2027-01-01T01:00:00")
    page.click("#apply-range")
    loaded(page)
    assert url_params(page)["since"] == ["2027-01-01T00:00:00Z"]
    expected = api_total(plant, {"since": "2027-01-01T00:00:00Z", "until": "2027-01-01T01:00:00Z"})
    assert total_of(page) == expected == PLANT_ALERTS


def test_sorting_on_every_column(admin, plant):
    page = admin.page
    open_alerts(page, "?size=25")
    page.click('#grid thead th[data-column="name"] button')
    loaded(page)
    assert url_params(page)["sort"] == ["name"]
    assert page.get_attribute('#grid thead th[data-column="name"]', "aria-sort") == "ascending"
    names = page.locator("#grid td[data-column=name]").all_inner_texts()
    assert names == sorted(names, key=str.casefold) or names == sorted(names)
    page.click('#grid thead th[data-column="name"] button')
    loaded(page)
    assert url_params(page)["sort"] == ["-name"]
    for column in ALL_COLUMNS:
        key = SORT_KEYS.get(column, column)
        for sort in (key, f"-{key}"):
            go(page, f"/alerts?size=25&sort={sort}")
            expected = plant.api(f"/alerts?limit=25&sort={sort}")["alerts"]
            assert row_ids(page) == [r["id"] for r in expected], sort


def test_paging(admin, plant):
    page = admin.page
    open_alerts(page, "?size=25")
    total = total_of(page)
    assert page.is_disabled("#prev")
    page.click("#next")
    loaded(page)
    assert url_params(page)["page"] == ["2"]
    assert row_ids(page) == [r["id"] for r in plant.api("/alerts?limit=25&offset=25")["alerts"]]
    assert page.inner_text("#page-info") == f"26–50 of {total}"
    last = -(-total // 25)
    open_alerts(page, f"?size=25&page={last}")
    assert len(row_ids(page)) == total - 25 * (last - 1)
    assert page.is_disabled("#next")


def test_group_by_sections_expand(admin, plant):
    page = admin.page
    open_alerts(page)
    page.select_option("#group-by", "severity")
    loaded(page)
    groups = plant.api("/alerts/groups?by=severity")["groups"]
    heads = page.locator("#grid tr.group-head").all_inner_texts()
    assert len(heads) == len(groups)
    for head, group in zip(heads, groups, strict=True):
        assert f"{group['count']} alert" in head
    page.click('#grid tbody[data-value="high"] button.group-toggle')
    loaded(page)
    page.wait_for_selector('#grid tbody[data-value="high"] tr.row')
    assert url_params(page)["open"] == ["high"]
    severities = page.locator(
        '#grid tbody[data-value="high"] td[data-column=severity]'
    ).all_inner_texts()
    assert severities and set(severities) == {"High"}
    admin.shot("group-by-severity")
    for by in ("engine", "name", "sensor", "site", "status", "protocol"):
        page.select_option("#group-by", by)
        loaded(page)
        expected = plant.api(f"/alerts/groups?by={by}")["groups"]
        assert page.locator("#grid tr.group-head").count() == len(expected), by


def test_url_holds_the_state_back_and_forward(admin, plant):
    page = admin.page
    open_alerts(page)
    page.fill("#search", "Modbus")
    page.press("#search", "Enter")
    loaded(page)
    page.select_option("#range", "30d")
    loaded(page)
    page.select_option("#group-by", "severity")
    loaded(page)
    grouped_url = page.url
    page.go_back()
    loaded(page)
    assert "group" not in url_params(page)
    assert page.input_value("#group-by") == ""
    assert page.input_value("#range") == "30d"
    page.go_back()
    loaded(page)
    assert page.input_value("#range") == "any"
    assert page.input_value("#search") == "Modbus"
    page.go_forward()
    page.go_forward()
    loaded(page)
    assert page.url == grouped_url
    assert page.input_value("#group-by") == "severity"
    # a copied link opens the same view
    other = admin.new_page()
    other.goto(grouped_url)
    loaded(other)
    assert other.input_value("#search") == "Modbus"
    assert (
        other.locator("#grid tr.group-head").all_inner_texts()
        == page.locator("#grid tr.group-head").all_inner_texts()
    )


def test_keyboard_navigation(admin, plant):
    page = admin.page
    open_alerts(page, f"?sensor={SENSOR}")
    ids = row_ids(page)
    page.keyboard.press("j")
    page.wait_for_selector("#pane h2")
    assert url_params(page)["sel"] == [ids[0]]
    page.keyboard.press("ArrowDown")
    wait_until(lambda: url_params(page).get("sel") == [ids[1]], 5, "the second row selected")
    assert page.evaluate("document.activeElement.dataset.id") == ids[1]
    page.keyboard.press("k")
    wait_until(lambda: url_params(page).get("sel") == [ids[0]], 5, "back to the first row")
    page.keyboard.press("x")
    assert page.inner_text("#selected-count") == "1 selected"
    page.keyboard.press("Escape")
    page.wait_for_selector("#pane", state="hidden")
    assert "sel" not in url_params(page)
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search"
    page.keyboard.press("Escape")
    page.focus("#grid tr.row >> nth=1")
    page.keyboard.press("o")
    page.wait_for_url(f"**/alerts/{ids[1]}")


# -- details ------------------------------------------------------------------------------


def test_details_pane_and_full_details(admin, plant):
    page = admin.page
    scan = plant.plant_alert("port_scan_detected")
    open_alerts(page)
    page.fill("#search", "192.0.2.66")
    page.press("#search", "Enter")
    loaded(page)
    page.click(f'#grid tr.row[data-id="{scan["id"]}"] td[data-column=name]')
    page.wait_for_selector("#pane h2")
    pane = page.inner_text("#pane")
    for expected in ("Port Scan Detected", "192.0.2.66", "192.0.2.20", "Protocol", "tcp",
                     SENSOR, "plant-a", "cell-1", "First detection", "Detections"):  # fmt: skip
        assert expected in pane, expected
    for tactic in scan["tactics"]:
        assert tactic in pane
    assert page.input_value("#pane-status") == scan["status"]
    admin.shot("alerts-pane-search")

    page.click("#view-full")
    page.wait_for_url(f"**/alerts/{scan['id']}")
    page.wait_for_selector("#panel-action ol.steps li")
    details = plant.api(f"/alerts/{scan['id']}")
    steps = page.locator("#panel-action ol.steps li").all_inner_texts()
    assert steps == details["remediation"]
    admin.shot("alert-details", docs=True)
    page.click("#tab-details")
    text = page.inner_text("#panel-details")
    assert details["message"] in text
    for key in details["parameters"]:
        assert key in text
    for tactic in details.get("tactics", []):
        name = tactic["name"] if isinstance(tactic, dict) else tactic
        assert name in text
    admin.shot("alert-details-fields")
    page.click("#tab-entities")
    entities = page.inner_text("#panel-entities")
    assert "192.0.2.66" in entities and "192.0.2.20" in entities
    page.click("#tab-activity")
    assert page.locator("#panel-activity table tbody tr").count() == len(details["audit"])
    assert page.locator("#panel-activity h2", has_text="History").count() == 1
    page.click("#back")
    page.wait_for_url("**/alerts?search=192.0.2.66*")


def test_status_and_severity_changes_reach_the_sensor(admin, plant):
    page = admin.page
    target = plant.plant_alert("new_asset_detected")["id"]
    open_alerts(page, f"?sel={target}")
    page.wait_for_selector("#pane h2")
    page.select_option("#pane-status", "active")
    page.click("#pane-status-apply")
    [(alert, outcome, _detail)] = close_results(page)
    assert (alert, outcome) == (target, "Applied")
    wait_until(lambda: plant.sensor_alert(target)["status"] == "active", 30, "active on the sensor")
    page.wait_for_selector("#pane-severity")
    page.select_option("#pane-severity", "high")
    page.click("#pane-severity-apply")
    assert close_results(page)[0][1] == "Applied"
    wait_until(lambda: plant.sensor_alert(target)["severity"] == "high", 30, "high on the sensor")
    audit = plant.api(f"/alerts/{target}")["audit"]
    assert any(a["actor"].endswith(f"user:{USERS['admin'][0]}") for a in audit), audit


def test_learn_a_learnable_alert_and_not_the_others(admin, plant):
    page = admin.page
    learnable = plant.plant_alert("unpermitted_usage_of_modbus_function_code", "192.0.2.10")
    page.goto(f"/alerts/{learnable['id']}")
    page.wait_for_selector("#learn")
    assert page.is_enabled("#learn")
    page.click("#learn")
    assert close_results(page)[0][1] == "Applied"
    wait_until(
        lambda: plant.sensor_alert(learnable["id"])["close_reason"] == "learned",
        30,
        "learned on the sensor",
    )
    rules = json.loads(plant.sensor_cli("baseline", "list", "--kind", "learned_alert",
                                        "--format", "json"))  # fmt: skip
    assert rules, "no learned-alert rule on the sensor"

    other = plant.plant_alert("modbus_exception")
    page.goto(f"/alerts/{other['id']}")
    page.wait_for_selector("#learn")
    assert page.is_disabled("#learn")
    assert "not possible" in page.inner_text("#learn-note")
    assert page.locator("text=Unlearn is done on the sensor").count() == 1
    admin.shot("learn-disabled")


def test_bulk_learn_reports_each_alert(admin, plant):
    page = admin.page
    good = plant.plant_alert("unpermitted_usage_of_modbus_function_code", "192.0.2.66")["id"]
    bad = plant.plant_alert("illegal_connection_attempt_on_port_0")["id"]
    open_alerts(page, f"?sensor={SENSOR}")
    for alert_id in (good, bad):
        page.check(f'#grid tr.row[data-id="{alert_id}"] td.check input')
    assert page.inner_text("#selected-count") == "2 selected"
    assert page.inner_text("#bulk-learn") == "Learn (1 of 2 learnable)"
    admin.shot("bulk-selection")
    page.click("#bulk-learn")
    page.wait_for_selector("#results-dialog[open]")
    admin.shot("bulk-result")
    results = {r[0]: r for r in close_results(page)}
    assert results[good][1] == "Applied"
    assert results[bad][1] == "Refused" and results[bad][2]
    wait_until(lambda: plant.sensor_alert(good)["close_reason"] == "learned", 30, "learned")
    assert plant.sensor_alert(bad)["status"] == "new"
    # select all on the page, then clear
    loaded(page)
    page.check("#select-all")
    assert page.inner_text("#selected-count") == f"{len(row_ids(page))} selected"
    page.click("#bulk-clear")
    assert page.is_hidden("#selection-bar")


def test_comment_from_the_portal(admin, plant):
    page = admin.page
    scan = plant.plant_alert("port_scan_detected")["id"]
    page.goto(f"/alerts/{scan}")
    page.click("#tab-activity")
    note = "checked with the plant: <b>maintenance laptop</b>"
    page.fill("#comment-text", note)
    page.click("#comment-form button[type=submit]")
    assert close_results(page)[0][1] == "Applied"
    page.wait_for_selector("#comments li")
    assert note in page.inner_text("#comments")
    assert USERS["admin"][0] in page.inner_text("#comments")
    admin.shot("comment")

    def on_sensor() -> bool:
        from sqlalchemy import select

        from otwatch.agent.store.models import AuditEvent
        from otwatch.agent.store.readonly import open_for_reading

        store = open_for_reading(plant.sensor_dir)
        try:
            with store.session() as s:
                events = s.scalars(
                    select(AuditEvent).where(AuditEvent.alert_id == int(scan.split("-")[0]))
                )
                actor = f"central:user:{USERS['admin'][0]}"
                return any(e.actor == actor and note in json.dumps(e.detail) for e in events)
        finally:
            store.close()

    wait_until(on_sensor, 30, "the comment in the sensor's store")


def test_download_pcap_is_the_sensors_file(admin, plant, tmp_path):
    page = admin.page
    scan = plant.plant_alert("port_scan_detected")["id"]
    page.goto(f"/alerts/{scan}")
    page.wait_for_selector("#learn")
    with page.expect_download(timeout=60_000) as download:
        page.click("#pcap")
    path = download.value.path()
    page.wait_for_selector("#pcap-status:has-text('Verified')")
    admin.shot("pcap-verified")
    local = tmp_path / "sensor.pcap"
    plant.sensor_cli("pcap", "get", scan.split("-")[0], "-o", str(local))
    assert Path(path).read_bytes() == local.read_bytes()
    assert len(local.read_bytes()) > 100


def test_download_pcap_from_an_offline_sensor_says_so(admin, plant):
    page = admin.page
    page.goto("/alerts/1-s-bulk")
    page.wait_for_selector("#learn")
    page.click("#pcap")
    page.wait_for_selector("#pcap-status:has-text('is offline')")
    assert "s-bulk" in page.inner_text("#pcap-status")
    assert page.is_visible("#pcap-retry")
    admin.shot("pcap-offline")
    page.click("#pcap-retry")
    page.wait_for_selector("#pcap-status:has-text('is offline')")


# -- export, XSS, sensors ---------------------------------------------------------------------


def test_export_csv_is_the_selection_and_inert(admin, plant):
    page = admin.page
    open_alerts(page, "?sensor=s-xss&sensor=s1&severity=medium,high")
    with page.expect_download() as download:
        page.click("#export")
    body = Path(download.value.path()).read_bytes()
    expected = plant.api_bytes(
        "/alerts/export.csv?sensor=s-xss&sensor=s1&severity=medium&severity=high"
    )
    assert body == expected
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    assert len(rows) == total_of(page)
    assert {"id", "name", "severity", "message"} <= set(rows[0])
    cells = [v for row in rows for v in row.values() if v]
    assert not [c for c in cells if c[0] in "=+-@\t\r"], "formula injection"
    [xss] = [r for r in rows if r["id"] == "1-s-xss"]
    assert "HYPERLINK" in xss["message"]


def test_xss_payloads_render_as_text(admin, plant):
    page = admin.page
    open_alerts(page, "?sensor=s-xss&sel=1-s-xss")
    page.wait_for_selector("#pane h2")
    assert page.inner_text("#grid td[data-column=name]") == XSS["name"]
    assert XSS["source_address"] in page.inner_text("#grid td[data-column=source_device]")
    pane = page.inner_text("#pane")
    assert XSS["source_address"] in pane and XSS["destination_address"] in pane
    admin.shot("xss-inert")
    page.goto("/alerts/1-s-xss")
    page.wait_for_selector("#learn")
    page.click("#tab-details")
    assert XSS["message"] in page.inner_text("#panel-details")
    assert page.inner_text("#alert-title") == XSS["name"]
    injected = page.evaluate(
        "document.querySelectorAll('main img, main svg, main script, [onerror], [onload]').length"
    )
    assert injected == 0
    time.sleep(0.3)  # a payload that ran would have opened its dialog by now (checked after)


def test_sensors_page(admin, plant):
    page = admin.page
    page.goto("/sensors")
    page.wait_for_selector("#sensors tbody tr")
    rows = {
        r[0]: r
        for r in page.locator("#sensors tbody tr").evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
    }
    assert rows[SENSOR][1] == "online"
    assert rows["s-bulk"][1] == "offline"
    assert rows[SENSOR][3] == "plant-a" and rows[SENSOR][4] == "cell-1"
    assert "events" in rows[SENSOR][6]
    health = next(x for x in plant.api("/sensors") if x["sensor"] == SENSOR)["health"]
    ring = health.get("ring_usage")
    assert rows[SENSOR][7] == ("—" if ring is None else f"{round(ring * 100)}%")
    assert rows[SENSOR][6] == f"{health['outbox_depth']} events"
    assert "sensors: 1 online" in page.inner_text("#sensor-summary")
    admin.shot("sensors")
    page.click(f'#sensors tr[data-sensor="{SENSOR}"] a')
    loaded(page)
    assert url_params(page) == {"sensor": [SENSOR], "status": ["new"]}
