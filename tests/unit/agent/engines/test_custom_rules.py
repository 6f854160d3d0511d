"""User-defined rules from packets: alert with the rule's title and severity, event action,
time window, device filters, protocol fields."""

from __future__ import annotations

from scapy.layers.dns import DNS, DNSQR

from otwatch.agent.engines.custom_rules import CustomRuleEngine
from tests.factories import SEC, T0, A, B, C, EngineRun, modbus_request, netstore, tcp, udp

__all__ = ["netstore"]
ENGINES = (CustomRuleEngine,)
TYPE = "unauthorized_operation_was_detected_by_a_user_defined_rule"


def rules(*specs: dict) -> dict:
    return {"custom_rules": {"rules": list(specs)}}


WRITE_RULE = {
    "id": 7,
    "name": "Modbus write from engineering",
    "protocol": "modbus",
    "sources": ["192.0.2.0/24"],
    "conditions": [{"field": "modbus.function_code", "op": "in", "value": [5, 6, 15, 16]}],
    "severity": "high",
    "message": "{source_address} wrote to {destination_address} (fc {modbus.function_code})",
}


def test_modbus_write_raises_the_rule_alert(netstore):
    run = EngineRun.with_store(netstore, ENGINES, settings=rules(WRITE_RULE))
    run.feed(
        [modbus_request(A, B, 6), modbus_request(A, B, 3), modbus_request(C, B, 6)], start_ns=T0
    )
    [det] = run.of(TYPE)
    assert det.fields["rule_name"] == "Modbus write from engineering"
    assert det.fields["rule_severity"] == "high" and det.fields["rule_id"] == 7
    assert det.message == f"{A} wrote to {B} (fc 6)"


def test_event_action_is_recorded_not_alerted(netstore):
    rule = {
        "name": "DNS to outside",
        "protocol": "dns",
        "action": "event",
        "conditions": ["dns.query endswith .example.org"],
    }
    run = EngineRun.with_store(netstore, ENGINES, settings=rules(rule))
    run.feed([udp(A, B, 5000, 53, bytes(DNS(qd=DNSQR(qname="c2.example.org"))))], start_ns=T0)
    assert run.types() == {}
    [event] = run.engines[0].take_events()
    assert event["rule_name"] == "DNS to outside" and event["source_address"] == A


def test_time_window_payload_and_ports(netstore):
    night = {
        "name": "Telnet at night",
        "protocol": "tcp",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "time_from": "22:00",
        "time_to": "06:00",
        "conditions": ["dst_port == 23", "payload contains root"],
    }
    run = EngineRun.with_store(netstore, ENGINES, settings=rules(night))
    # T0 is 2026-09-21T12:53:20Z: outside the window
    run.feed([tcp(A, B, 50000, 23, payload=b"root\r\n")], start_ns=T0)
    assert run.types() == {}
    midnight = (T0 // (86400 * SEC) + 1) * 86400 * SEC
    run.feed(
        [tcp(A, B, 50000, 23, payload=b"root\r\n"), tcp(A, B, 50000, 23, payload=b"ls\r\n")],
        start_ns=midnight + 3600 * SEC,
    )
    assert run.types() == {TYPE: 1}


def test_disabled_and_non_matching_rules_are_quiet(netstore):
    off = {**WRITE_RULE, "name": "off", "enabled": False}
    run = EngineRun.with_store(netstore, ENGINES, settings=rules(off))
    run.feed([modbus_request(A, B, 6)], start_ns=T0)
    assert run.types() == {} and run.engines[0].apps == frozenset()  # not even called


def test_reload_replaces_the_rules(netstore):
    run = EngineRun.with_store(netstore, ENGINES, settings=rules(WRITE_RULE))
    run.engines[0].load([])
    run.feed([modbus_request(A, B, 6)], start_ns=T0 + SEC)
    assert run.types() == {}
