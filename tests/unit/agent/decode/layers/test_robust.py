"""RobustPacket: a field that runs out of bytes marks the packet truncated instead of raising,
and the rebuild gives back the captured bytes."""

from __future__ import annotations

from scapy.fields import IntField, ShortField

from otwatch.agent.decode.layers.robust import RobustPacket


class Sample(RobustPacket):
    name = "sample"
    fields_desc = [ShortField("a", 1), IntField("b", 2)]


def test_complete_input_is_not_truncated() -> None:
    pkt = Sample(b"\x00\x05\x00\x00\x00\x07")
    assert (pkt.a, pkt.b, pkt.truncated) == (5, 7, False)


def test_short_input_is_truncated_and_round_trips() -> None:
    pkt = Sample(b"\x00\x05\x00")
    assert pkt.truncated and pkt.a == 5
    assert bytes(pkt) == b"\x00\x05\x00"


def test_built_packets_are_not_truncated() -> None:
    assert not Sample().truncated and bytes(Sample()) == b"\x00\x01\x00\x00\x00\x02"
