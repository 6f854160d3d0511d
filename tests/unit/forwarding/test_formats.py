"""Formatters: CEF, LEEF 2.0, RFC 5424, ECS and text, read back with strict parsers, with
hostile values (pipes, equals, backslashes, line breaks, non-ASCII, 8 KB user agents)."""

from __future__ import annotations

import ipaddress
import json
import re

import pytest

from otwatch.forwarding.cef import format_cef
from otwatch.forwarding.ecs import ecs_document, format_ecs
from otwatch.forwarding.leef import format_leef
from otwatch.forwarding.rfc5424 import frame_octet_counted, syslog_message
from otwatch.forwarding.text import format_text
from tests.forwarding.parsers import ParseError, parse_cef, parse_leef, parse_rfc5424
from tests.forwarding.samples import LONG_UA, event


def _clean(text: str) -> str:
    """What survives: control characters other than tab/CR/LF are dropped."""
    return text.replace("\x00", "")


def test_cef_round_trips_hostile_values():
    ev = event()
    cef = parse_cef(format_cef(ev))
    a = ev.alert
    assert (cef.version, cef.vendor, cef.product) == ("0", "otwatch", "otwatch")
    assert cef.signature == a["type"]
    # a header cannot hold a line break: those become spaces, everything else round-trips
    assert cef.name == _clean(a["name"]).replace("\r", " ").replace("\n", " ")
    assert cef.severity == 10
    ext = cef.ext
    assert ext["msg"] == _clean(a["message"])
    assert LONG_UA in ext["msg"]
    assert ext["cat"] == _clean(a["category"])
    assert (ext["src"], ext["dst"]) == ("192.0.2.10", "2001:db8::1")
    assert ext["smac"] == "02:00:00:00:00:01" and "dmac" not in ext
    assert ext["proto"] == "http"
    assert ext["rt"] == str(ev.ts_ns // 1_000_000)
    assert ext["start"] == "1790000000000" and ext["end"] == "1790000001500"
    labels = {ext[f"cs{i}Label"]: ext[f"cs{i}"] for i in range(1, 7)}
    assert labels == {
        "sensor": "s1",
        "site": _clean(a["site"]),
        "zone": "zone=1",
        "engine": "policy_violation",
        "status": "new",
        "tactics": "Impair Process Control,Evasion",
    }
    assert ext["externalId"] == "42" and ext["flexString1"] == ev.event_id


@pytest.mark.parametrize("severity, cef", [("low", 4), ("medium", 8), ("high", 10)])
def test_cef_severity_follows_the_spec(severity, cef):
    assert parse_cef(format_cef(event(severity=severity))).severity == cef


def test_strict_cef_parser_refuses_what_a_lax_formatter_would_write():
    with pytest.raises(ParseError):
        parse_cef("CEF:0|a|b|1|t|n|5|msg=a=b")
    with pytest.raises(ParseError):
        parse_cef("CEF:0|a|b|1|t|n|5|msg=a\\qb")
    with pytest.raises(ParseError):
        parse_cef("CEF:0|a|b|1|t|n|5|msg=a\nb")


def test_a_source_that_is_not_an_address_goes_to_shost():
    cef = parse_cef(format_cef(event(source_address="plc-1.example")))
    assert cef.ext["shost"] == "plc-1.example" and "src" not in cef.ext


def test_leef_2_round_trips_hostile_values():
    ev = event()
    leef = parse_leef(format_leef(ev))
    assert (leef.version, leef.vendor, leef.product) == ("2.0", "otwatch", "otwatch")
    assert leef.event_id == ev.alert["type"]
    attrs = leef.attrs
    assert attrs["msg"] == _clean(ev.alert["message"])
    assert attrs["site"] == _clean(ev.alert["site"])
    assert attrs["cat"] == _clean(ev.alert["category"])
    assert attrs["name"] == _clean(ev.alert["name"])
    assert (attrs["src"], attrs["dst"], attrs["srcMAC"]) == (
        "192.0.2.10",
        "2001:db8::1",
        "02:00:00:00:00:01",
    )
    assert attrs["sev"] == "10" and attrs["eventId"] == ev.event_id
    assert attrs["devTime"] == "2026-09-21T14:13:20.000Z"
    assert attrs["devTimeFormat"] == "yyyy-MM-dd'T'HH:mm:ss.SSSX"


def test_rfc5424_header_and_structured_data():
    ev = event(kind="closed", id='7"]\\', sensor="sensor-1")
    line = syslog_message(ev, "body text").decode()
    msg = parse_rfc5424(line)
    assert msg.pri == 9  # user.alert, as Defender forwards
    assert msg.timestamp == "2026-09-21T14:13:20.000000Z"
    assert (msg.hostname, msg.app, msg.procid, msg.msgid) == (
        "sensor-1",
        "otwatch",
        "-",
        "ALERT_CLOSED",
    )
    sd = msg.sd["otwatch@32473"]
    assert sd["alertId"] == '7"]\\' and sd["eventId"] == ev.event_id
    assert sd["kind"] == "closed" and sd["severity"] == "high"
    assert msg.msg == "body text"


def test_octet_counting_frame_counts_bytes_not_characters():
    message = syslog_message(event(), "ü日本").decode()
    framed = frame_octet_counted(message.encode())
    length, _, rest = framed.partition(b" ")
    assert int(length) == len(rest) == len(message.encode())


def test_ecs_fields_have_the_documented_types():
    ev = event()
    doc = json.loads(format_ecs(ev))
    assert doc == ecs_document(ev)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", doc["@timestamp"])
    assert doc["event"]["kind"] == "alert"
    assert doc["event"]["category"] == ["intrusion_detection"]
    assert isinstance(doc["event"]["severity"], int) and doc["event"]["severity"] == 10
    assert doc["event"]["id"] == ev.event_id
    assert doc["rule"] == {
        "id": ev.alert["type"],
        "name": ev.alert["name"],
        "category": ev.alert["category"],
    }
    ipaddress.ip_address(doc["source"]["ip"])
    ipaddress.ip_address(doc["destination"]["ip"])
    assert doc["source"]["mac"] == "02-00-00-00-00-01"
    assert "mac" not in doc["destination"]
    assert doc["network"]["protocol"] == "http"
    assert doc["observer"]["name"] == "s1" and doc["observer"]["type"] == "sensor"
    assert doc["threat"]["framework"] == "MITRE ATT&CK for ICS"
    assert doc["threat"]["tactic"]["name"] == ["Impair Process Control", "Evasion"]
    assert doc["otwatch"]["alert"]["message"] == ev.alert["message"]  # JSON keeps it whole
    assert doc["otwatch"]["alert"]["fields"]["user_agent"] == LONG_UA
    assert "\n" not in format_ecs(ev)


def test_text_body_is_one_line():
    body = format_text(event())
    assert "\n" not in body and "\r" not in body and "\x00" not in body
    assert "Alert Group: Cat " in body and "Severity: high" in body
    assert "new\\nline" in body
