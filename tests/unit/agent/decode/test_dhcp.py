"""DHCP decoding: message type and options from Scapy-built messages; garbage is None."""

from __future__ import annotations

from scapy.layers.dhcp import BOOTP, DHCP

from otwatch.agent.decode.dhcp import ACK, DISCOVER, parse_dhcp

MAC = bytes.fromhex("020000000001")


def test_discover_and_ack():
    discover = bytes(
        BOOTP(op=1, chaddr=MAC, xid=5)
        / DHCP(options=[("message-type", "discover"), ("hostname", b"plc-7"), "end"])
    )
    msg = parse_dhcp(discover)
    assert (msg.op, msg.message_type, msg.type_name, msg.hostname) == (
        1,
        DISCOVER,
        "DISCOVER",
        "plc-7",
    )
    assert msg.client_mac == "02:00:00:00:00:01" and msg.xid == 5
    ack = bytes(
        BOOTP(op=2, chaddr=MAC, yiaddr="192.0.2.50")
        / DHCP(options=[("message-type", "ack"), ("server_id", "192.0.2.1"), "end"])
    )
    msg = parse_dhcp(ack)
    assert (msg.message_type, msg.yiaddr, msg.server_id) == (ACK, "192.0.2.50", "192.0.2.1")


def test_not_dhcp():
    assert parse_dhcp(bytes(BOOTP(op=1, chaddr=MAC))) is None  # no options, no cookie
    assert parse_dhcp(b"\x01" * 300) is None
    good = bytes(BOOTP(op=1, chaddr=MAC) / DHCP(options=[("message-type", "request"), "end"]))
    for cut in range(len(good)):
        parse_dhcp(good[:cut])
