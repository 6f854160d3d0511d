"""A real rsyslog receives otwatch's alerts over UDP, TCP (octet counting) and TLS (RFC 5425,
CA-verified, client certificate); what lands is parsed strictly: RFC 5424 header and
structured data, CEF, LEEF 2.0, ECS JSON and text, with hostile values end to end."""

from __future__ import annotations

import json

import pytest

from otwatch.agent.store.forwarding import sensor_backend
from otwatch.forwarding.repository import add_rule, list_rules, parse_rule_spec
from tests.forwarding.parsers import parse_cef, parse_leef, parse_rfc5424
from tests.forwarding.running import run_forwarder
from tests.forwarding.samples import HOSTILE, LONG_UA, manager, raise_alert

N = 20


def _target(rsyslog, transport: str, fmt: str, ca=None) -> dict:
    target = {
        "kind": "syslog",
        "host": "127.0.0.1",
        "port": rsyslog.ports[transport],
        "transport": transport,
        "format": fmt,
    }
    if transport == "tls":
        target |= {
            "ca_file": ca.path("ca.pem"),
            "cert_file": ca.path("client.pem"),
            "key_file": ca.path("client.key"),
        }
    return target


def _feed(store, rsyslog, transport, fmt, ca=None, rule="r"):
    """A rule to rsyslog, then N alerts (the last with hostile text and an 8 KB user agent)."""
    backend = sensor_backend(store)
    with store.session() as session:
        add_rule(
            session,
            backend,
            parse_rule_spec({"name": rule, "targets": [_target(rsyslog, transport, fmt, ca)]}),
            "tester",
        )
    mgr = manager(store, site=f"site {HOSTILE}", zone="zone=|1")
    for n in range(N - 1):
        raise_alert(mgr, n)
    raise_alert(
        mgr,
        N,
        message=f"UA {LONG_UA} {HOSTILE}",
        type_id="unauthorized_http_user_agent",
        protocol="http",
        user_agent=LONG_UA,
    )
    mgr.flush()
    before = len(rsyslog.lines(transport))
    run_forwarder(backend, lambda: len(rsyslog.lines(transport)) >= before + N)
    with store.session() as session:
        assert list_rules(session, backend)[0]["targets"][0]["sent"] == N
    return [parse_rfc5424(line) for line in rsyslog.lines(transport)[before:]]


def _clean(text: str) -> str:
    return text.replace("\x00", "")


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_cef_over_each_transport(store, rsyslog, test_ca, transport):
    messages = _feed(store, rsyslog, transport, "cef", test_ca)
    assert len(messages) == N
    for msg in messages:
        assert (msg.pri, msg.hostname, msg.app, msg.msgid) == (9, "s1", "otwatch", "ALERT_NEW")
    ids = [int(m.sd["otwatch@32473"]["alertId"]) for m in messages]
    assert ids == sorted(ids)
    cefs = [parse_cef(m.msg) for m in messages]
    assert all(c.vendor == "otwatch" and c.severity in (4, 8, 10) for c in cefs)
    hostile = cefs[-1]
    assert hostile.signature == "unauthorized_http_user_agent"
    assert hostile.ext["msg"] == _clean(f"UA {LONG_UA} {HOSTILE}")
    assert hostile.ext["cs2Label"] == "site" and hostile.ext["cs2"] == _clean(f"site {HOSTILE}")
    assert hostile.ext["cs3"] == "zone=|1"
    assert hostile.ext["externalId"] == str(ids[-1])
    assert hostile.ext["flexString1"] == messages[-1].sd["otwatch@32473"]["eventId"]


def test_leef_json_and_text_bodies(tmp_path_factory, rsyslog, test_ca):
    from otwatch.agent.store.db import open_store

    for fmt in ("leef", "json", "text"):
        store = open_store(tmp_path_factory.mktemp(f"data-{fmt}"))
        try:
            messages = _feed(store, rsyslog, "tcp", fmt, rule=f"r-{fmt}")
        finally:
            store.close()
        last = messages[-1].msg
        if fmt == "leef":
            leef = parse_leef(last)
            assert leef.attrs["msg"] == _clean(f"UA {LONG_UA} {HOSTILE}")
            assert leef.attrs["site"] == _clean(f"site {HOSTILE}")
            assert leef.attrs["src"].startswith("192.0.2.")
        elif fmt == "json":
            doc = json.loads(last)
            assert doc["event"]["kind"] == "alert" and doc["observer"]["name"] == "s1"
            assert doc["otwatch"]["alert"]["message"] == f"UA {LONG_UA} {HOSTILE}"
            assert isinstance(doc["event"]["severity"], int)
        else:
            assert last.startswith("Sensor: s1; Alert: ") and "\n" not in last


def test_tls_refuses_a_receiver_signed_by_another_ca(store, rsyslog, test_ca):
    from otwatch.forwarding.probe import probe_targets
    from otwatch.forwarding.targets.base import SyslogSpec

    spec = SyslogSpec(
        host="127.0.0.1",
        port=rsyslog.ports["tls"],
        transport="tls",
        ca_file=test_ca.path("other-ca.pem"),
    )
    [result] = probe_targets([spec], "s1")
    assert not result.ok
    assert "TLS certificate verify failed" in result.error
    good = SyslogSpec(
        host="127.0.0.1",
        port=rsyslog.ports["tls"],
        transport="tls",
        ca_file=test_ca.path("ca.pem"),
        cert_file=test_ca.path("client.pem"),
        key_file=test_ca.path("client.key"),
    )
    before = len(rsyslog.lines("tls"))
    [result] = probe_targets([good], "s1")
    assert result.ok, result.error
    [line] = rsyslog.wait_lines("tls", before + 1)[before:]
    msg = parse_rfc5424(line)
    assert msg.msgid == "ALERT_TEST" and "forwarding test" in parse_cef(msg.msg).name
