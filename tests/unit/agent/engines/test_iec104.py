"""IEC 60870-5-104 engine: each type triggers on its traffic and stays quiet on near misses."""

from __future__ import annotations

import struct

from otwatch.agent.engines.iec104 import Iec104Engine, frame_length
from tests.factories import (
    CLIENT,
    SERVER,
    Case,
    EngineRun,
    case_tests,
    of_type,
    to_client,
    to_server,
    types,
)


def asdu(type_id: int, cot: int = 6, ca: int = 3, element: bytes = b"\x01") -> bytes:
    return bytes([type_id, 1, cot, 0]) + struct.pack("<H", ca) + b"\x01\x00\x00" + element


def apdu(body: bytes) -> bytes:
    return b"\x68" + bytes([4 + len(body)]) + b"\x00\x00\x00\x00" + body


def command(type_id: int, cot: int = 6, **kw):
    return to_server(2404, apdu(asdu(type_id, cot, **kw)))


def answer(type_id: int, cot: int, **kw):
    return to_client(2404, apdu(asdu(type_id, cot, **kw)))


STARTDT = to_server(2404, b"\x68\x04\x07\x00\x00\x00")
SHORT_I = to_server(2404, apdu(b"\x2d\x01\x06"))  # I-format with a 3-octet "ASDU"


CASES = [
    Case("unpermitted_usage_of_asdu_types", [command(50)], [command(100)]),
    Case("slave_device_received_illegal_asdu_type", [command(24)], [command(45)]),
    Case("slave_device_received_illegal_command_cause_of_transmission", [command(45, cot=3)],
         [command(45, cot=8)]),
    Case("slave_device_received_illegal_common_address", [command(45, ca=0)], [command(45)]),
    Case("slave_device_received_illegal_information_object_address", [answer(45, 47)],
         [answer(45, 7)]),
    Case("controller_reset", [command(105)], [command(103, element=bytes(7))]),
    Case("excessive_malformed_packets_in_a_single_session", [SHORT_I, SHORT_I],
         [SHORT_I, command(45)]),
]  # fmt: skip


def engine_run() -> EngineRun:
    return EngineRun(Iec104Engine, settings={"iec104": {"enable": ("*",)}})


test_triggers, test_quiet = case_tests(
    CASES, engine_run, learn=[STARTDT, command(100), command(45)]
)


def test_negative_causes_make_the_controlling_station_the_source() -> None:
    for cot, type_id in ((44, "slave_device_received_illegal_asdu_type"),
                         (45, "slave_device_received_illegal_command_cause_of_transmission"),
                         (46, "slave_device_received_illegal_common_address")):  # fmt: skip
        (det,) = of_type(engine_run().feed([answer(45, cot)]), type_id)
        assert (det.fields["source_address"], det.fields["destination_address"]) == (
            CLIENT,
            SERVER,
        )
        assert f"cause {cot}" in det.message


def test_unpermitted_message_names_the_type() -> None:
    run = engine_run()
    run.learn([command(100)])
    (det,) = of_type(run.feed([command(46)]), "unpermitted_usage_of_asdu_types")
    assert det.message == (
        f"{CLIENT} sent ASDU type 46 (C_DC_NA_1 double command) (cause 6) to {SERVER} "
        "(common address 3), not seen during learning"
    )


def test_several_apdus_in_one_segment_and_one_split() -> None:
    data = apdu(asdu(45)) + apdu(asdu(105)) + apdu(asdu(24))
    run = engine_run()
    dets = run.feed([to_server(2404, data[:20]), to_server(2404, data[20:])])
    assert {"controller_reset", "slave_device_received_illegal_asdu_type"} <= set(types(dets))


def test_framing() -> None:
    assert frame_length(b"\x68\x04\x07\x00\x00\x00", 0) == 6
    assert frame_length(b"\x68", 0) is None
    assert frame_length(b"\x68\x02", 0) == 0
    assert frame_length(b"\x00\x04", 0) == 0


def test_struct_header_matches_scapy_contrib_on_the_corpus(pcaps) -> None:
    from scapy.config import conf
    from scapy.contrib.scada.iec104 import IEC104_I_Message_SeqIOA, IEC104_I_Message_SingleIOA
    from scapy.layers.l2 import Ether

    from otwatch.agent.capture.pcapfile import open_capture
    from otwatch.agent.decode.headers import decode

    ours, theirs = [], []
    old, conf.debug_dissector = conf.debug_dissector, True
    try:
        with open_capture(pcaps / "iec104_diverse.pcap") as capture:
            for frame in capture:
                rec = decode(*frame)
                if not rec.payload or 2404 not in (rec.sport, rec.dport):
                    continue
                off, data = 0, rec.payload
                while off < len(data) and (n := frame_length(data, off)):
                    if data[off + 2] & 1 == 0:
                        a = data[off + 6 :]
                        ours.append((a[0], a[2] & 0x3F, a[4] | a[5] << 8))
                    off += n
                for layer in Ether(frame[3]).iterpayloads():
                    if isinstance(layer, IEC104_I_Message_SeqIOA | IEC104_I_Message_SingleIOA):
                        theirs.append((layer.type_id, layer.cot, layer.common_asdu_address))
    finally:
        conf.debug_dissector = old
    assert len(ours) == 72  # tshark: 72 ASDUs in iec104_diverse
    assert ours == theirs
