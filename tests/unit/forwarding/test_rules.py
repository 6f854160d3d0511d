"""Rule filters: each kind includes what it names and excludes the rest."""

from __future__ import annotations

import pytest

from otwatch.forwarding.repository import ForwardingError, parse_rule_spec
from otwatch.forwarding.rules import RuleFilter, matches
from tests.forwarding.samples import hostile_alert

ALERT = hostile_alert(
    severity="medium",
    engine="anomaly",
    category="Scan",
    protocol="Modbus",
    type="port_scan_detected",
    sensor="s1",
    site="north",
    zone="cell-a",
    learnable=True,
)


@pytest.mark.parametrize(
    "include, exclude",
    [
        ({"min_severity": "medium"}, {"min_severity": "high"}),
        ({"min_severity": "low"}, {"min_severity": "high"}),
        ({"engines": ["anomaly", "malware"]}, {"engines": ["malware"]}),
        ({"categories": ["scan"]}, {"categories": ["Firmware Change"]}),
        ({"protocols": ["modbus"]}, {"protocols": ["dnp3", "s7"]}),
        ({"types": ["port_scan_detected"]}, {"types": ["arp_address_scan_detected"]}),
        ({"sensors": ["S1"]}, {"sensors": ["s2"]}),
        ({"sites": ["north"]}, {"sites": ["south"]}),
        ({"zones": ["cell-a"]}, {"zones": ["cell-b"]}),
        ({"learnable": True}, {"learnable": False}),
    ],
)
def test_each_filter_includes_and_excludes(include, exclude):
    assert matches(RuleFilter.model_validate(include), ALERT)
    assert not matches(RuleFilter.model_validate(exclude), ALERT)


def test_filters_are_anded_and_empty_matches_all():
    assert matches(RuleFilter(), ALERT)
    both = RuleFilter(min_severity="low", engines=["anomaly"], zones=["cell-b"])
    assert not matches(both, ALERT)


def test_an_unknown_engine_or_severity_is_a_clear_error():
    base = {"name": "r", "targets": [{"kind": "file", "path": "/tmp/x"}]}
    with pytest.raises(ForwardingError, match="unknown engine 'firewall'"):
        parse_rule_spec({**base, "filters": {"engines": ["firewall"]}})
    with pytest.raises(ForwardingError, match="min_severity"):
        parse_rule_spec({**base, "filters": {"min_severity": "critical"}})


def test_target_settings_are_checked():
    def spec(target):
        return parse_rule_spec({"name": "r", "targets": [target]})

    with pytest.raises(ForwardingError, match="targets"):
        parse_rule_spec({"name": "r", "targets": []})
    with pytest.raises(ForwardingError, match="need transport tls"):
        spec({"kind": "syslog", "host": "h", "transport": "udp", "ca_file": "/ca.pem"})
    with pytest.raises(ForwardingError, match="both cert_file and key_file"):
        spec({"kind": "syslog", "host": "h", "transport": "tls", "cert_file": "/c.pem"})
    with pytest.raises(ForwardingError, match="webhook url"):
        spec({"kind": "webhook", "url": "ftp://example.test/x"})
    with pytest.raises(ForwardingError, match="invalid header"):
        spec({"kind": "webhook", "url": "https://h/x", "headers": {"A": "b\r\nX: y"}})
    with pytest.raises(ForwardingError, match="name"):
        parse_rule_spec({"name": "", "targets": [{"kind": "file", "path": "/x"}]})
