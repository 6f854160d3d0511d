"""The first detectors, from packets: each triggers on its traffic and stays quiet otherwise."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP

from tests.factories import (
    MIN,
    alert_types,
    eth,
    ether_frames,
    modbus_request,
    modbus_response,
    run_pipeline,
)

CLIENT, SERVER, STRANGER = "192.0.2.10", "192.0.2.20", "192.0.2.99"


def polling(n: int = 20):
    out = []
    for i in range(n):
        out.append(modbus_request(CLIENT, SERVER, 3, tid=i))
        out.append(modbus_response(SERVER, CLIENT, 3, b"\x02\x00\x2a", tid=i))
    return out


def learn_then(store, after, learning=None):
    """Learn on normal polling for 1 minute of traffic, then replay ``after``."""
    learning = learning or polling()
    run_pipeline(
        store, ether_frames(learning, step_ns=MIN // len(learning)), learning_period_ns=MIN // 2
    )
    return run_pipeline(store, ether_frames(after, start_ns=10**18))


# -- New Asset Detected --------------------------------------------------------------------


def test_new_asset_after_learning(store):
    learn_then(store, [modbus_request(STRANGER, SERVER, 3)])
    assert alert_types(store) == {
        "new_asset_detected": 1,
        "unpermitted_usage_of_modbus_function_code": 1,
    }


def test_known_devices_and_internet_hosts_are_not_new_assets(store):
    internet = eth() / IP(src="93.184.216.34", dst=SERVER) / TCP(sport=443, dport=50000)
    learn_then(store, [*polling(5), internet])
    assert "new_asset_detected" not in alert_types(store)


def test_new_asset_from_arp_announcement(store):
    arp = eth("02:00:00:00:00:63", "ff:ff:ff:ff:ff:ff") / ARP(
        op=1, psrc="192.0.2.63", pdst=SERVER, hwsrc="02:00:00:00:00:63"
    )
    learn_then(store, [arp])
    assert alert_types(store) == {"new_asset_detected": 1}


def test_no_policy_alerts_while_learning(store):
    run_pipeline(
        store, ether_frames([modbus_request(STRANGER, SERVER, 16)]), learning_period_ns=MIN
    )
    assert alert_types(store) == {}


# -- Unpermitted Usage of Modbus Function Code ---------------------------------------------


def test_unpermitted_function_code_aggregates_per_pair(store):
    writes = [
        modbus_request(CLIENT, SERVER, 16, b"\x00\x64\x00\x01\x02\x00\x07", tid=i) for i in range(3)
    ] + [modbus_request(CLIENT, SERVER, 6, tid=9)]
    learn_then(store, writes)
    assert alert_types(store) == {"unpermitted_usage_of_modbus_function_code": 4}


def test_learned_function_codes_do_not_alert(store):
    learn_then(store, polling(10))
    assert alert_types(store) == {}


# -- Modbus Exception ----------------------------------------------------------------------


def test_modbus_exception_response(store):
    run_pipeline(
        store,
        ether_frames([modbus_response(SERVER, CLIENT, 0x83, b"\x02")]),
        learning_period_ns=MIN,
    )
    assert alert_types(store) == {"modbus_exception": 1}


def test_normal_response_is_not_an_exception(store):
    run_pipeline(
        store,
        ether_frames([modbus_response(SERVER, CLIENT, 3, b"\x02\x00\x01")]),
        learning_period_ns=MIN,
    )
    assert alert_types(store) == {}


# -- Port Scan Detected --------------------------------------------------------------------


def syn(src, dst, dport, sport=40000):
    return eth() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S")


def test_port_scan_at_threshold(store):
    probes = [syn(CLIENT, SERVER, port) for port in range(1, 26)]
    run_pipeline(store, ether_frames(probes), learning_period_ns=MIN)
    assert alert_types(store) == {"port_scan_detected": 1}


def test_24_ports_or_slow_probing_is_not_a_scan(store):
    run_pipeline(
        store, ether_frames([syn(CLIENT, SERVER, p) for p in range(1, 25)]), learning_period_ns=MIN
    )
    slow = [syn(CLIENT, "192.0.2.21", p) for p in range(1, 40)]
    run_pipeline(
        store, ether_frames(slow, start_ns=10**18, step_ns=10 * 1_000_000_000), learning_period_ns=0
    )
    assert "port_scan_detected" not in alert_types(store)


def test_udp_responses_to_many_client_ports_are_not_a_scan(store):
    dns = []
    for i in range(40):
        dns.append(eth() / IP(src=CLIENT, dst=SERVER) / UDP(sport=30000 + i, dport=53))
        dns.append(eth() / IP(src=SERVER, dst=CLIENT) / UDP(sport=53, dport=30000 + i))
    run_pipeline(store, ether_frames(dns), learning_period_ns=MIN)
    assert "port_scan_detected" not in alert_types(store)


# -- Illegal Connection Attempt on Port 0 --------------------------------------------------


def test_port_zero(store):
    frames = [syn(CLIENT, SERVER, 0), eth() / IP(src=CLIENT, dst=SERVER) / UDP(dport=0)]
    run_pipeline(store, ether_frames(frames), learning_period_ns=MIN)
    assert alert_types(store) == {"illegal_connection_attempt_on_port_0": 2}


def test_source_port_zero_reply_is_not_flagged(store):
    frames = [eth() / IP(src=CLIENT, dst=SERVER) / TCP(sport=0, dport=80, flags="S")]
    run_pipeline(store, ether_frames(frames), learning_period_ns=MIN)
    assert alert_types(store) == {}
