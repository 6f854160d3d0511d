"""The portal's Devices pages in a real headless Chromium against a real central, Mosquitto,
sensor agent and sync daemon (``harness``): the grid with the inventory the sensor synced
(columns, sorting, filters, search, paging, URL state, empty and error states, long values),
a device's page (identity, names with their source, type and Purdue level with the reason,
facts with source and time, MAC history, services, peers, recent alerts), an admin's
override reaching the sensor's own store, a reader without edit controls (and the server's
403), alert details linking to their devices, and attacker-controlled device names (set on
the sensor, from DHCP) staying inert.

The sensor replays the simulated plant, then a DHCP request and a DNS answer built here (a
host with names), then real captures of the shared corpus that carry identification (ENIP
ListIdentity, BACnet I-Am, PROFINET DCP, DNP3 and IEC 104 outstations) and IT traffic (nmap
host discovery, DNS/mDNS/LLMNR), so the inventory has vendors, models, firmware and more than
one page of devices; ``otwatch devices set`` on the sensor gives one device an XSS payload as
its name and another a very long one. Each test also fails on any request to another host,
any dialog and any script or CSP error (``conftest.Session.check``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from otwatch.demo.parts import wait_until
from tests.conftest import PCAPS
from tests.factories import mac, udp
from tests.integration.mqtt_broker import MOSQUITTO
from tests.portal.harness import CHROMIUM, SENSOR, Plant, start_plant

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or not Path(MOSQUITTO).exists() or not PCAPS.is_dir(),
    reason=f"the device pages' tests need {CHROMIUM}, {MOSQUITTO} and the corpus at {PCAPS}",
)

CAPTURES = ("enip_list_identity.pcap", "bacnet_stack_services.pcap", "profinet_dcp_set_ip.pcap",
            "dnp3_test_data.pcap", "iec104_diverse.pcap", "nmap_host_discovery.pcap",
            "it_wikipedia_dns_http.pcap")  # fmt: skip
XSS_NAME = "<img src=x onerror=alert('device')><script>alert(2)</script>Boiler PLC"
XSS_IP = "192.0.2.20"  # the PLC the rogue host scans: the port scan alert's destination
LONG_NAME = "Line 3 filling station, north hall, cabinet 12 — " * 4 + "end"
LONG_IP = "192.0.2.21"
HOST = "192.0.2.40"  # joins after learning, named by DHCP and DNS
DHCP_NAME = "<img src=x onerror=alert('dhcp')>hmi-02"
DNS_NAME = "hmi-02.plant.example"
PLANT_LATER_S = 1_798_761_900  # 2027-01-01 00:05 UTC: after the simulated plant's minutes
EDIT_IP = "192.0.2.11"
HEADERS = ["Name", "IP", "MAC", "Vendor", "Model", "Firmware", "Type", "Purdue", "Protocols",
           "Sensor", "First seen", "Last seen", "Learned"]  # fmt: skip
SORTS = ["name", "ip", "mac", "vendor", "model", "firmware", "type", "purdue_level", "protocols",
         "sensor", "first_seen", "last_seen", "learned"]  # fmt: skip


def names_capture(path: Path) -> Path:
    """A DHCP request of ``HOST`` (host name, vendor class), then its DNS query whose answer
    names it: the names a device gets from the network (the corpus has no such answer for a
    plant device); its first packets after learning raise New Asset Detected."""
    chaddr = bytes.fromhex(mac(HOST).replace(":", ""))
    dhcp = DHCP(options=[("message-type", "request"), ("requested_addr", HOST),
                         ("hostname", DHCP_NAME.encode()), ("vendor_class_id", b"OT-HMI 1.0"),
                         "end"])  # fmt: skip
    answer = DNS(id=1, qr=1, qd=DNSQR(qname=DNS_NAME), an=DNSRR(rrname=DNS_NAME, rdata=HOST))
    frames = [
        Ether(src=mac(HOST), dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67) / BOOTP(op=1, xid=7, chaddr=chaddr) / dhcp,
        udp(HOST, "192.0.2.53", 40000, 53, DNS(id=1, qd=DNSQR(qname=DNS_NAME))),
        udp("192.0.2.53", HOST, 53, 40000, answer),
    ]  # fmt: skip
    for i, frame in enumerate(frames):
        frame.time = PLANT_LATER_S + i
    wrpcap(str(path), frames)
    return path


@pytest.fixture(scope="module")
def plant(tmp_path_factory) -> Iterator[Plant]:
    """This module's system: the portal harness's, with an inventory worth showing."""
    root = tmp_path_factory.mktemp("portal-devices")
    screens = root / "screens"
    screens.mkdir()
    plant = start_plant(
        root, screens,
        extra_captures=[names_capture(root / "names.pcap"), *(PCAPS / n for n in CAPTURES)],
        sensor_commands=[("devices", "set", XSS_IP, "--name", XSS_NAME),
                         ("devices", "set", LONG_IP, "--name", LONG_NAME)],
    )  # fmt: skip
    try:
        sensor_count = len(json.loads(plant.sensor_cli("devices", "list", "--format", "json")))
        assert sensor_count > 25, "the inventory should fill more than one page of 25"
        wait_until(
            lambda: plant.api(f"/devices?sensor={SENSOR}&limit=1")["total"] == sensor_count,
            60,
            "the sensor's devices at central",
            plant.sync.log,
        )
        yield plant
    finally:
        plant.stop()
        print(f"\nportal screenshots: {screens}")


# -- helpers --------------------------------------------------------------------------------


def loaded(page) -> None:
    page.wait_for_selector('body[data-loading="false"]')


def open_devices(page, query: str = "") -> None:
    page.goto("/devices" + query)
    loaded(page)


def go(page, url: str) -> None:
    """Another view in the same page, as Back/Forward does it (no reload)."""
    page.evaluate(
        "url => { history.pushState(null, '', url); dispatchEvent(new PopStateEvent('popstate')) }",
        url,
    )
    loaded(page)


def row_ids(page) -> list[int]:
    ids = page.locator("#grid tbody tr.row").evaluate_all("rows => rows.map(r => r.dataset.id)")
    return [int(i) for i in ids]


def api_items(plant: Plant, **params) -> dict:
    return plant.api("/devices?" + urlencode(params, doseq=True))


def api_ids(plant: Plant, **params) -> list[int]:
    return [d["id"] for d in api_items(plant, **params)["items"]]


def total_of(page) -> int:
    return int(page.inner_text("#total").split()[0].replace(",", ""))


def url_params(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def device_of(plant: Plant, ip: str) -> dict:
    [device] = [d for d in api_items(plant, search=ip, limit=100)["items"] if d["ip"] == ip]
    return device


def sensor_device(plant: Plant, ip: str) -> dict:
    return json.loads(plant.sensor_cli("devices", "show", ip, "--format", "json"))


def cell(page, device_id: int, column: str):
    return page.locator(f'#grid tr.row[data-id="{device_id}"] td[data-column="{column}"]')


# -- the grid -------------------------------------------------------------------------------


def test_grid_shows_the_synced_inventory(admin, plant):
    page = admin.page
    open_devices(page)
    texts = page.locator("#grid thead th").all_inner_texts()
    assert [t.replace("▲", "").replace("▼", "").strip() for t in texts] == HEADERS
    assert page.get_attribute('#grid thead th[data-column="ip"]', "aria-sort") == "ascending"
    everything = api_items(plant, limit=1)["total"]
    assert total_of(page) == everything > 25
    assert row_ids(page) == api_ids(plant, limit=50)
    # the ENIP ListIdentity of the corpus: vendor, model and firmware as the sensor decoded them
    rockwell = next(d for d in api_items(plant, vendor="Rockwell", limit=5)["items"])
    assert rockwell["model"] and rockwell["firmware"]
    for column in ("vendor", "model", "firmware", "ip", "mac", "type"):
        shown = cell(page, rockwell["id"], column)
        assert shown.get_attribute("title") == rockwell[column], column
    assert cell(page, rockwell["id"], "learned").inner_text() == "new"
    assert cell(page, rockwell["id"], "sensor").inner_text() == SENSOR
    plc = device_of(plant, "192.0.2.22")
    assert cell(page, plc["id"], "learned").inner_text() == "learned"
    assert cell(page, plc["id"], "purdue_level").inner_text() == "Level 1"
    assert cell(page, plc["id"], "protocols").inner_text() == ", ".join(plc["protocols"])
    admin.shot("devices-page", docs=True)


def test_long_values_end_in_an_ellipsis_with_the_whole_value_on_hover(admin, plant):
    page = admin.page
    open_devices(page)
    device = device_of(plant, LONG_IP)
    name = cell(page, device["id"], "name")
    assert name.get_attribute("title") == LONG_NAME
    assert name.inner_text() == LONG_NAME  # all of it in the page, cut only on screen
    clipped = name.evaluate(
        "td => [td.scrollWidth > td.clientWidth, getComputedStyle(td).textOverflow]"
    )
    assert clipped == [True, "ellipsis"]
    wrap = page.locator(".grid-wrap")
    wide = wrap.evaluate("w => w.scrollWidth > w.clientWidth")
    assert not wide, "the grid needs a horizontal scroll bar at 1280 px"
    name.hover()
    admin.shot("devices-long-values")


def test_sorting_on_the_server(admin, plant):
    page = admin.page
    open_devices(page, "?size=25")
    page.click('#grid thead th[data-column="vendor"] button')
    loaded(page)
    assert url_params(page)["sort"] == ["vendor"]
    assert page.get_attribute('#grid thead th[data-column="vendor"]', "aria-sort") == "ascending"
    assert row_ids(page) == api_ids(plant, sort="vendor", order="asc", limit=25)
    page.click('#grid thead th[data-column="vendor"] button')
    loaded(page)
    assert url_params(page)["sort"] == ["-vendor"]
    assert row_ids(page) == api_ids(plant, sort="vendor", order="desc", limit=25)
    for key in SORTS:
        for sort, order in ((key, "asc"), (f"-{key}", "desc")):
            go(page, f"/devices?size=25&sort={sort}")
            assert row_ids(page) == api_ids(plant, sort=key, order=order, limit=25), sort
    # every column sorts (Learned and Protocols too), and the grid never shows an error
    assert page.locator("#grid thead th button").count() == len(HEADERS)
    page.click('#grid thead th[data-column="learned"] button')
    loaded(page)
    assert url_params(page)["sort"] == ["learned"] and page.is_hidden("#grid-error")
    assert page.inner_text('#grid tbody tr:first-child td[data-column="learned"]') == "new"


def test_paging(admin, plant):
    page = admin.page
    open_devices(page, "?size=25")
    total = total_of(page)
    assert page.is_disabled("#prev")
    assert page.inner_text("#page-info") == f"1–25 of {total}"
    page.click("#next")
    loaded(page)
    assert url_params(page)["page"] == ["2"]
    assert row_ids(page) == api_ids(plant, limit=25, offset=25)
    assert page.inner_text("#page-info") == f"26–{min(50, total)} of {total}"
    page.select_option("#page-size", "50")
    loaded(page)
    assert "page" not in url_params(page) and "size" not in url_params(page)  # the defaults
    assert len(row_ids(page)) == min(50, total)


FILTERS = [
    ("type", "#f-type", "PLC", {"type": "PLC"}),
    ("sensor", "#f-sensor", SENSOR, {"sensor": SENSOR}),
    ("range", "#f-range", "30d", None),
]


@pytest.mark.parametrize(
    ("key", "control", "value", "params"), FILTERS, ids=[f[0] for f in FILTERS]
)
def test_select_filters(admin, plant, key, control, value, params):
    page = admin.page
    open_devices(page)
    page.select_option(control, value)
    loaded(page)
    assert url_params(page)[key] == [value]
    if params is None:  # seen in the last 30 days: the plant's devices are dated 2027
        params = {"since": "30d"}
    expected = api_items(plant, **params, limit=100)
    assert 0 < expected["total"] < api_items(plant, limit=1)["total"] or key == "sensor"
    assert total_of(page) == expected["total"]
    assert sorted(row_ids(page)) == sorted(d["id"] for d in expected["items"])
    assert page.locator(f'#chips li[data-kind="{key}"]').count() == 1
    page.click(f'#chips li[data-kind="{key}"] button')
    loaded(page)
    assert key not in url_params(page)


@pytest.mark.parametrize(
    ("control", "value", "params"),
    [("#f-vendor", "rockwell", {"vendor": "rockwell"}),
     ("#f-protocol", "bacnet", {"protocol": "bacnet"}),
     ("#f-subnet", "192.0.2.0/24", {"subnet": "192.0.2.0/24"}),
     ("#search", "X208", {"search": "X208"})],
    ids=["vendor", "protocol", "subnet", "search"],
)  # fmt: skip
def test_text_filters_and_search(admin, plant, control, value, params):
    page = admin.page
    open_devices(page)
    page.fill(control, value)
    page.press(control, "Enter")
    loaded(page)
    [(key, _)] = params.items()
    assert url_params(page)[key] == [value]
    expected = api_items(plant, **params, limit=100)
    assert 0 < expected["total"] < api_items(plant, limit=1)["total"]
    assert total_of(page) == expected["total"]
    assert sorted(row_ids(page)) == sorted(d["id"] for d in expected["items"])
    if key == "subnet":
        ips = page.locator("#grid td[data-column=ip]").all_inner_texts()
        assert ips and all(ip.startswith("192.0.2.") for ip in ips)
    if key == "vendor":
        admin.shot("devices-filtered")


def test_new_since_learning_and_back_forward(admin, plant):
    page = admin.page
    open_devices(page)
    everything = total_of(page)
    page.check("#f-new")
    loaded(page)
    assert url_params(page)["new"] == ["1"]
    new = api_items(plant, new="true", limit=100)
    assert total_of(page) == new["total"] and 0 < new["total"] < everything
    assert set(page.locator("#grid td[data-column=learned]").all_inner_texts()) == {"new"}
    page.select_option("#f-type", "PLC")
    loaded(page)
    assert total_of(page) == api_items(plant, new="true", type="PLC", limit=1)["total"]
    both = page.url
    page.go_back()
    loaded(page)
    assert page.input_value("#f-type") == "" and page.is_checked("#f-new")
    assert total_of(page) == new["total"]
    page.go_back()
    loaded(page)
    assert not page.is_checked("#f-new") and total_of(page) == everything
    page.go_forward()
    page.go_forward()
    loaded(page)
    assert page.url == both and page.input_value("#f-type") == "PLC"
    other = admin.new_page()  # a copied link opens the same view
    other.goto(both)
    loaded(other)
    assert other.inner_text("#total") == page.inner_text("#total")
    assert other.is_checked("#f-new")


def test_empty_and_error_states(admin, plant):
    page = admin.page
    open_devices(page, "?search=no-such-device-anywhere")
    assert page.is_visible("#empty")
    assert "No devices match" in page.inner_text("#empty")
    assert total_of(page) == 0
    admin.shot("devices-empty")
    page.click("#empty button")
    loaded(page)
    assert "search" not in url_params(page) and total_of(page) > 0
    # a subnet the server cannot read: its words, and Retry
    page.fill("#f-subnet", "not-a-subnet")
    page.press("#f-subnet", "Enter")
    loaded(page)
    assert page.is_visible("#grid-error")
    error = page.inner_text("#grid-error")
    assert "Could not load devices" in error and "not-a-subnet" in error and "CIDR" in error
    assert page.locator("#grid tbody tr").count() == 0
    admin.shot("devices-error")
    page.click("#chips li[data-kind=subnet] button")
    loaded(page)
    assert page.is_hidden("#grid-error") and total_of(page) > 0


# -- a device's page ------------------------------------------------------------------------


def test_device_page_sections(admin, plant):
    page = admin.page
    rockwell = api_items(plant, vendor="Rockwell", limit=1)["items"][0]
    details = plant.api(f"/devices/{rockwell['id']}")
    open_devices(page, "?vendor=Rockwell")
    page.click(f'#grid tr.row[data-id="{rockwell["id"]}"] td[data-column="vendor"]')
    page.wait_for_url(f"**/devices/{rockwell['id']}")
    loaded(page)
    identity = page.inner_text("#identity")
    for value in (rockwell["ip"], rockwell["mac"], rockwell["vendor"], rockwell["model"],
                  rockwell["firmware"], SENSOR):  # fmt: skip
        assert value in identity, value
    classification = page.inner_text("#classification")
    assert rockwell["type"] in classification and details["type_reason"] in classification
    facts = page.locator("#facts-table tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert len(facts) == len(details["facts"]) > 0
    assert {f[2] for f in facts} == {f["source"] for f in details["facts"]}
    assert any(f[0] == "model" and f[1] == rockwell["model"] for f in facts)
    assert all(f[3].startswith("20") for f in facts)  # the time each was seen
    assert page.locator("#mac-history tbody tr").count() == len(details["mac_history"]) > 0
    traffic = page.inner_text("#traffic")
    for item in details["services"] + details["peer_addresses"]:
        assert item in traffic
    # its alerts are older than central keeps (90 days): none, said so
    assert details["recent_alerts"] == []
    assert page.inner_text("#alerts-table") == "None."
    admin.shot("device-page", docs=True)  # the picture in docs/portal.md
    page.click("#back")
    page.wait_for_url("**/devices?vendor=Rockwell")


def test_device_names_sources_and_alerts(admin, plant):
    """A host named by DHCP (an attacker-controlled host name) and DNS: each name with its
    source, the DHCP vendor class as a fact, and its New Asset alert linking to the alert."""
    page = admin.page
    host = device_of(plant, HOST)
    details = plant.api(f"/devices/{host['id']}")
    assert details["names"] == {DHCP_NAME: "dhcp", DNS_NAME: "dns"}
    page.goto(f"/devices/{host['id']}")
    loaded(page)
    names = page.locator("#names tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert names == [[DHCP_NAME, "dhcp"], [DNS_NAME, "dns"]]
    assert page.inner_text("#device-title") == host["name"] in (DHCP_NAME, DNS_NAME)
    facts = page.inner_text("#facts-table")
    assert "dhcp_vendor_class" in facts and "OT-HMI 1.0" in facts
    assert page.evaluate("document.querySelectorAll('main img, main script').length") == 0
    alerts = page.locator("#alerts-table tbody tr a")
    assert alerts.count() == len(details["recent_alerts"]) > 0
    assert "New Asset Detected" in alerts.all_inner_texts()
    admin.shot("device-page-names")
    first = details["recent_alerts"][0]
    assert alerts.first.get_attribute("href") == f"/alerts/{first['id']}"
    alerts.first.click()
    page.wait_for_url(f"**/alerts/{first['id']}")
    page.wait_for_selector("#learn")


def test_other_addresses_of_the_mac(admin, plant):
    """PROFINET DCP Set moved an IO device to another IP (corpus): each address's page lists
    the other one under its MAC, linked."""
    page = admin.page
    [station] = api_items(plant, search="X208", limit=5)["items"]
    same_mac = [d for d in api_items(plant, search=station["mac"], limit=100)["items"]
                if d["mac"] == station["mac"] and d["id"] != station["id"]]  # fmt: skip
    assert same_mac, "the DCP capture gives its MAC a second IP"
    page.goto(f"/devices/{station['id']}")
    loaded(page)
    links = page.locator("#ip-history tbody tr a")
    assert links.all_inner_texts() == [d["ip"] for d in same_mac]
    assert station["mac"] in page.inner_text("#mac-history")
    links.first.click()
    page.wait_for_url(f"**/devices/{same_mac[0]['id']}")
    loaded(page)
    assert station["ip"] in page.inner_text("#ip-history")


def test_an_unknown_device_says_so(admin, plant):
    page = admin.page
    page.goto("/devices/999999")
    page.wait_for_selector("#device-error:not([hidden])")
    assert page.inner_text("#device-error") == "Device 999999 does not exist."


def test_admin_edit_reaches_the_sensor(admin, plant):
    page = admin.page
    device = device_of(plant, EDIT_IP)
    page.goto(f"/devices/{device['id']}")
    loaded(page)
    assert page.locator("#edit-form").count() == 1
    page.fill("#edit-name", "Mixing line HMI")
    page.select_option("#edit-type", "Engineering station")
    page.select_option("#edit-purdue", "3")
    page.click("#edit-form button[type=submit]")
    page.wait_for_selector("#edit-status:has-text('Saved')")
    # central shows it at once; the page says the sensor has yet to apply it, or has
    assert page.inner_text("#device-title") == "Mixing line HMI"
    pending_or_applied = page.locator("#pending").count() == 1 or "set by user" in page.inner_text(
        "#classification"
    )
    assert pending_or_applied
    admin.shot("device-edit-pending")

    def on_sensor() -> bool:
        overrides = sensor_device(plant, EDIT_IP)["overrides"]
        return overrides == {"name": "Mixing line HMI", "type": "Engineering station",
                             "purdue_level": 3}  # fmt: skip

    wait_until(on_sensor, 30, "the override in the sensor's store")

    def applied() -> bool:
        return plant.api(f"/devices/{device['id']}")["pending_override"] is None

    wait_until(applied, 30, "the sensor's snapshot carrying the override back")
    page.reload()
    loaded(page)
    assert page.locator("#pending").count() == 0
    classification = page.inner_text("#classification")
    assert "Engineering station" in classification and "Level 3" in classification
    assert classification.count("set by user") == 2
    assert "set by user" in page.inner_text("#identity")
    # back to the sensor's guesses: clear all three
    page.fill("#edit-name", "")
    page.select_option("#edit-type", "")
    page.select_option("#edit-purdue", "")
    page.click("#edit-form button[type=submit]")
    page.wait_for_selector("#edit-status:has-text('Saved')")
    wait_until(
        lambda: (
            sensor_device(plant, EDIT_IP)["overrides"]
            == {"name": None, "type": None, "purdue_level": None}
        ),
        30,
        "the overrides cleared on the sensor",
    )
    page.click("#edit-form button[type=submit]")
    assert page.inner_text("#edit-status") == "Nothing to change."


def test_reader_sees_no_edit_and_the_server_refuses(reader, plant):
    page = reader.page
    device = device_of(plant, EDIT_IP)
    page.goto(f"/devices/{device['id']}")
    loaded(page)
    assert page.locator("#edit-form, #edit-name, #edit-type, #edit-purdue").count() == 0
    assert page.text_content(".topbar .role") == "reader"
    status = page.evaluate(
        """async (id) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch(`/api/v1/devices/${id}`, {method: "PATCH",
              credentials: "same-origin",
              headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
              body: JSON.stringify({name: "by a reader"})});
            return r.status;
        }""",
        device["id"],
    )
    assert status == 403
    assert plant.api(f"/devices/{device['id']}")["name"] != "by a reader"
    reader.shot("device-reader")


# -- alerts link to their devices, attacker-controlled names stay inert ---------------------


def test_alert_details_link_to_the_devices(admin, plant):
    page = admin.page
    scan = plant.plant_alert("port_scan_detected")
    assert scan["destination_address"] == XSS_IP
    source, destination = device_of(plant, scan["source_address"]), device_of(plant, XSS_IP)
    page.goto(f"/alerts?sensor={SENSOR}&sel={scan['id']}")
    page.wait_for_selector("#pane h2")
    link = page.locator("#pane-destination")
    assert link.inner_text() == XSS_NAME
    assert link.get_attribute("href") == f"/devices/{destination['id']}"
    assert page.get_attribute("#pane-source", "href") == f"/devices/{source['id']}"
    assert page.inner_text("#pane-source") == scan["source_address"]  # no name: the address
    admin.shot("alert-pane-devices")
    link.click()
    page.wait_for_url(f"**/devices/{destination['id']}")
    loaded(page)
    assert page.inner_text("#device-title") == XSS_NAME
    page.goto(f"/alerts/{scan['id']}")
    page.wait_for_selector("#learn")
    page.click("#tab-details")
    assert page.get_attribute("#detail-destination", "href") == f"/devices/{destination['id']}"
    page.click("#tab-entities")
    assert page.inner_text("#entity-destination") == XSS_NAME
    page.click("#entity-source")
    page.wait_for_url(f"**/devices/{source['id']}")


def test_attacker_controlled_names_render_as_text(admin, plant):
    page = admin.page
    device = device_of(plant, XSS_IP)
    assert device["name"] == XSS_NAME  # synced from the sensor as it was set there
    open_devices(page, f"?search={XSS_IP}")
    assert cell(page, device["id"], "name").inner_text() == XSS_NAME
    page.goto(f"/devices/{device['id']}")
    loaded(page)
    assert page.inner_text("#device-title") == XSS_NAME
    assert XSS_NAME in page.inner_text("#identity")
    assert page.title().startswith(XSS_NAME)
    injected = page.evaluate(
        "document.querySelectorAll('main img, main svg, main script, [onerror], [onload]').length"
    )
    assert injected == 0
    admin.shot("device-xss-inert")
    time.sleep(0.3)  # a payload that ran would have opened its dialog by now (checked after)
