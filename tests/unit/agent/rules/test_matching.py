"""Custom rule matching: packet field values, several PDUs per segment, devices, windows."""

from __future__ import annotations

from otwatch.agent.decode.headers import decode
from otwatch.agent.rules.custom import validate_rule
from otwatch.agent.rules.matching import CompiledRule, packet_contexts, render_message
from tests.factories import T0, modbus_request


def record(pkt):
    data = bytes(pkt)
    return decode(T0, len(data), 1, data)


def test_each_modbus_pdu_is_a_context():
    two = modbus_request("192.0.2.1", "198.51.100.2", 3)
    two.load = bytes(two.load) + bytes(modbus_request("192.0.2.1", "198.51.100.2", 6).load)
    contexts = packet_contexts(record(two), None, ["modbus"])
    assert [c["modbus.function_code"] for c in contexts] == [3, 6]
    assert contexts[0]["src_ip"] == "192.0.2.1" and contexts[0]["dst_port"] == 502
    rule = CompiledRule(validate_rule({"name": "w", "conditions": ["modbus.function_code == 6"]}))
    assert rule.match(contexts)["modbus.function_code"] == 6
    assert packet_contexts(record(two), None, ["dns"]) == []  # not DNS: no context at all


def test_devices_and_days():
    rec = record(modbus_request("192.0.2.1", "198.51.100.2", 6))
    contexts = packet_contexts(rec, None, [])
    inside = CompiledRule(
        validate_rule({"name": "a", "sources": ["192.0.2.0/24"], "conditions": ["dst_port == 502"]})
    )
    outside = CompiledRule(
        validate_rule(
            {"name": "b", "destinations": ["02:00:00:00:00:99"], "conditions": ["dst_port == 502"]}
        )
    )
    assert inside.match(contexts) and not outside.match(contexts)
    monday = CompiledRule(validate_rule({"name": "c", "days": ["mon"], "conditions": ["ttl > 0"]}))
    assert monday.in_time(T0)  # 2026-09-21 is a Monday
    assert not monday.in_time(T0 + 86400 * 10**9)


def test_render_message():
    assert render_message(
        "{src_ip} sent {payload} ({nope})", {"src_ip": "a", "payload": b"\x01"}
    ) == ("a sent 01 (-)")
