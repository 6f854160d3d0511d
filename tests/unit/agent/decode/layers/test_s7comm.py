"""S7comm Scapy layers (TPKT/COTP/S7): build, dissect and round-trip each parameter type,
real corpus frames dissected from Ether up, several TPKTs per segment, and garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from otwatch.agent.decode.layers.s7comm import (
    COTP,
    S7,
    TPKT,
    S7BlockParameter,
    S7GenericParameter,
    S7PIServiceParameter,
    S7SetupParameter,
    S7StopParameter,
    S7UserDataParameter,
    S7VarAckParameter,
    S7VarItem,
    S7VarParameter,
    block_name,
    frame_length,
)

JOBS = [
    S7SetupParameter(pdu_length=960),
    S7VarParameter(function=0x04, items=[S7VarItem(db_number=68, area=0x84, address=0x80)]),
    S7VarParameter(function=0x05, items=[S7VarItem(area=0x83), S7VarItem(area=0x82)]),
    S7BlockParameter(function=0x1A, filename=b"_0800001P", trailer=b"\x0d1000332000212"),
    S7BlockParameter(function=0x1B, filename=b"_0800001P"),
    S7BlockParameter(function=0x1C, filename=b"_0800001P"),
    S7BlockParameter(function=0x1D, filename=b"_0A00005A"),
    S7BlockParameter(function=0x1E, upload_id=7),
    S7BlockParameter(function=0x1F, upload_id=7),
    S7PIServiceParameter(service_name=b"_INSE", parameter_block=b"\x01\x000800001P"),
    S7PIServiceParameter(service_name=b"P_PROGRAM"),
    S7StopParameter(),
    S7GenericParameter(function=0x00, rest=b"\x01\x02"),
]


def pdu(parameter, data: bytes = b"", rosctr: int = 1) -> bytes:
    return bytes(TPKT(cotp=COTP() / S7(rosctr=rosctr, parameter=parameter, data=data)))


@pytest.mark.parametrize("parameter", JOBS, ids=lambda p: f"{type(p).__name__}-{p.function}")
def test_job_build_dissect_round_trip(parameter) -> None:
    raw = pdu(parameter)
    assert frame_length(raw, 0) == len(raw)
    again = TPKT(raw)
    s7 = again[S7]
    assert type(s7.parameter) is type(parameter)
    assert bytes(s7.parameter) == bytes(parameter)
    assert s7.parameter_length == len(bytes(parameter))
    assert bytes(again) == raw


def test_userdata_build_and_dissect() -> None:
    param = S7UserDataParameter(type=4, function_group=5, subfunction=1)
    raw = pdu(param, b"\xff\x09\x00\x08" + bytes(8), rosctr=7)
    again = TPKT(raw)[S7].parameter
    assert isinstance(again, S7UserDataParameter)
    assert again.parameter_length == 4 and again.subfunction_name == "PLC password"
    assert TPKT(raw)[S7].data[:1] == b"\xff"


def test_ack_data_parameters_and_error_fields() -> None:
    raw = pdu(S7VarAckParameter(function=0x04, item_count=1), b"\xff\x04\x00\x08\x00", rosctr=3)
    s7 = TPKT(raw)[S7]
    assert isinstance(s7.parameter, S7VarAckParameter) and s7.error_class == 0
    ack = TPKT(pdu(S7GenericParameter(function=0x29), rosctr=3))[S7]
    assert isinstance(ack.parameter, S7GenericParameter) and ack.parameter.function == 0x29


def test_block_names() -> None:
    assert block_name(b"_0800001P") == "OB1"
    assert block_name(b"_0A00068A") == "DB68"
    assert block_name(b"P_PROGRAM") is None


def test_port_binding_and_two_tpkts_in_one_segment() -> None:
    both = pdu(S7StopParameter()) + pdu(S7SetupParameter())
    pkt = Ether(bytes(Ether() / IP() / TCP(sport=50000, dport=102) / Raw(both)))
    assert isinstance(pkt[TPKT][S7].parameter, S7StopParameter)
    assert isinstance(pkt[TPKT:2][S7].parameter, S7SetupParameter)


def test_non_s7_cotp_payload_stays_raw() -> None:
    mms = bytes(TPKT(cotp=COTP())) + b"\x01\x00\x01\x00"
    tpkt = TPKT(bytes(TPKT(cotp=COTP() / Raw(b"\x01\x00\x01\x00"))))
    assert not tpkt.haslayer(S7)
    connect = TPKT(bytes(TPKT(cotp=COTP(pdu_type=0xE0, variable_part=b"\x00\x00\x00\x01\x00"))))
    assert connect.cotp.pdu_type == 0xE0 and connect.cotp.length == 6
    assert TPKT(mms).length == 7


def test_real_frames_from_the_corpus(corpus) -> None:
    functions: dict[int, int] = {}
    names = set()
    for name in ("s7comm_stop_start_upload.pcap", "s7comm_download_ob1.pcap",
                 "s7comm_plc_password.pcap"):  # fmt: skip
        for data, payload in corpus(name, 102):
            tpkt = Ether(data)[TPKT]
            assert bytes(tpkt)[: len(payload)] == payload
            s7 = tpkt[S7]
            param = s7.parameter
            assert not getattr(param, "truncated", False)
            if s7.rosctr == 1:
                functions[param.function] = functions.get(param.function, 0) + 1
                if hasattr(param, "service_name"):
                    names.add(bytes(param.service_name))
            elif isinstance(param, S7UserDataParameter):
                names.add(param.subfunction_name.encode())
    assert functions[0x29] == 1 and functions[0x28] == 4
    assert functions[0x1D] == 5 and functions[0x1E] == 4 and functions[0x1F] == 4
    assert functions[0x1A] == 1 and functions[0x1B] == 2 and functions[0x1C] == 1
    assert {b"P_PROGRAM", b"_MODU", b"_GARB", b"_INSE", b"PLC password", b"Set clock"} <= names


def test_hmi_production_frames_round_trip(corpus) -> None:
    count = 0
    for data, payload in corpus("s7comm_hmi_production.pcap", 102):
        tpkt = Ether(data)[TPKT]
        assert bytes(tpkt)[: len(payload)] == payload
        count += tpkt.haslayer(S7)
    assert count == 1658


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_raises(data: bytes) -> None:
    for cls in (TPKT, COTP, S7, S7VarParameter, S7UserDataParameter, S7PIServiceParameter):
        bytes(cls(data))
    if data:
        frame_length(data, 0)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(JOBS), st.integers(0, 60))
def test_truncated_frames_never_raise(parameter, cut: int) -> None:
    TPKT(pdu(parameter)[:cut])
