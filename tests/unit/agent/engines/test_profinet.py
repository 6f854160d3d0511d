"""PROFINET engine: each type triggers on its traffic and stays quiet on near misses."""

from __future__ import annotations

import struct

from scapy.contrib.pnio import ProfinetIO
from scapy.contrib.pnio_dcp import ProfinetDCP
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from otwatch.agent.engines.profinet import ProfinetEngine, dcp_blocks, frame_class
from tests.factories import Case, EngineRun, case_tests, of_type, types

TOOL, DEVICE = "02:00:00:00:00:0a", "02:00:00:00:00:14"


def frame(payload: bytes, src: str = TOOL, dst: str = DEVICE):
    return Ether(src=src, dst=dst, type=0x8892) / Raw(payload)


def block(option: int, suboption: int, data: bytes) -> bytes:
    raw = struct.pack(">BBH", option, suboption, len(data)) + data
    return raw + (b"\x00" if len(data) % 2 else b"")


def dcp(service: int, service_type: int, *blocks: bytes, frame_id: int = 0xFEFD) -> bytes:
    body = b"".join(blocks)
    return struct.pack(">HBBIHH", frame_id, service, service_type, 0x1000001, 0, len(body)) + body


SET_IP = frame(dcp(4, 0, block(1, 2, b"\x00\x01" + bytes([192, 0, 2, 50, 255, 255, 255, 0,
                                                            192, 0, 2, 1]))))  # fmt: skip
GET_IP = frame(dcp(3, 0, b"\x01\x02"))
CYCLIC = frame(b"\x80\x00" + bytes(40))


CASES = [
    Case("unauthorized_profinet_frame_type", [frame(b"\xfe\x01" + bytes(30))], [CYCLIC]),
    Case("change_of_device_configuration", [SET_IP], [GET_IP]),
    Case("profinet_device_factory_reset", [frame(dcp(4, 0, block(5, 6, b"\x00\x04")))],
         [frame(dcp(4, 0, block(5, 3, b"\x00\x00\x01\x00")))]),
    Case("profinet_dcp_command_failed",
         [frame(dcp(4, 1, block(5, 4, b"\x01\x02\x03")), src=DEVICE, dst=TOOL)],
         [frame(dcp(4, 1, block(5, 4, b"\x01\x02\x00")), src=DEVICE, dst=TOOL)]),
]  # fmt: skip


def engine_run() -> EngineRun:
    return EngineRun(ProfinetEngine, settings={"profinet": {"enable": ("*",)}})


test_triggers, test_quiet = case_tests(CASES, engine_run, learn=[CYCLIC])


def test_set_ip_message_and_mac_addresses() -> None:
    (det,) = of_type(engine_run().feed([SET_IP]), "change_of_device_configuration")
    assert det.message == (
        f"{TOOL} set the IP parameters of PROFINET device {DEVICE} to "
        "192.0.2.50/255.255.255.0 gateway 192.0.2.1 (DCP Set, stored permanently)"
    )
    assert det.fields["source_mac"] == det.fields["source_address"] == TOOL
    assert det.fields["destination_mac"] == DEVICE


def test_set_built_with_scapy_contrib_layer_is_understood() -> None:
    # the contrib layer does not compute dcp_data_length for requests: set it
    pkt = Ether(src=TOOL, dst=DEVICE) / ProfinetIO(frameID=0xFEFD) / ProfinetDCP(
        service_id=4, service_type=0, option=2, sub_option=2, dcp_block_length=7,
        dcp_data_length=11, block_qualifier=1, name_of_station=b"plc-7",
    )  # fmt: skip
    (det,) = of_type(engine_run().feed([pkt]), "change_of_device_configuration")
    assert "name of station" in det.message and "'plc-7'" in det.message


def test_multi_block_set_request_is_read_entirely() -> None:
    blocks = block(5, 1, b"\x00\x00"), block(5, 6, b"\x00\x04"), block(5, 2, b"\x00\x00")
    payload = dcp(4, 0, *blocks)
    assert [(o, s) for o, s, _ in dcp_blocks(payload)] == [(5, 1), (5, 6), (5, 2)]
    assert "profinet_device_factory_reset" in types(engine_run().feed([frame(payload)]))


def test_other_ethertypes_cost_nothing() -> None:
    ip = Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / TCP()
    assert engine_run().feed([ip]) == []


def test_frame_classes() -> None:
    assert frame_class(0x8001) == "RT_CLASS_1/2 cyclic"
    assert frame_class(0xFEFE) == "DCP Identify request"
    assert frame_class(0x0100) == "RT_CLASS_3 cyclic"
    assert frame_class(0xFF90).startswith("reserved")


def test_dcp_blocks_match_scapy_contrib_on_the_corpus(pcaps) -> None:
    from otwatch.agent.capture.pcapfile import open_capture
    from otwatch.agent.decode.headers import decode

    compared = 0
    with open_capture(pcaps / "profinet_dcp_set_ip.pcap") as capture:
        for frame in capture:
            rec = decode(*frame)
            if rec.ethertype != 0x8892:
                continue
            ours = [(o, s) for o, s, _ in dcp_blocks(rec.payload)]
            dcp = ProfinetIO(rec.payload)[ProfinetDCP]
            if dcp.service_type == 0:
                assert ours[0] == (dcp.option, dcp.sub_option)
            else:
                assert ours == [(b.option, b.sub_option) for b in dcp.dcp_blocks]
            compared += 1
    assert compared == 4


def test_corpus_set_ip_is_a_configuration_change(pcaps) -> None:
    dets = engine_run().feed_capture(pcaps / "profinet_dcp_set_ip.pcap")
    (det,) = of_type(dets, "change_of_device_configuration")
    assert "to 192.168.0.10/255.255.255.0 gateway 192.168.0.1" in det.message
    assert det.fields["destination_mac"] == "08:00:06:93:cf:32"


def test_cyclic_frame_type_violations_are_reported_once_per_interval() -> None:
    run = engine_run()
    assert types(run.feed([CYCLIC] * 10)) == {"unauthorized_profinet_frame_type": 1}
    assert types(run.feed([CYCLIC], step_ns=2_000_000_000)) == {
        "unauthorized_profinet_frame_type": 1
    }
