"""S7comm engine: each type triggers on its traffic and stays quiet on near misses."""

from __future__ import annotations

from scapy.packet import Raw

from otwatch.agent.decode.layers.s7comm import (
    COTP,
    S7,
    TPKT,
    S7BlockParameter,
    S7PIServiceParameter,
    S7SetupParameter,
    S7StopParameter,
    S7UserDataParameter,
    S7VarItem,
    S7VarParameter,
)
from otwatch.agent.engines.s7 import S7Engine
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


def tpkt(parameter, data: bytes = b"", rosctr: int = 1) -> bytes:
    return bytes(TPKT(cotp=COTP() / S7(rosctr=rosctr, parameter=parameter, data=data)))


def job(parameter, data: bytes = b""):
    return to_server(102, tpkt(parameter, data))


def from_plc(parameter, data: bytes = b"", rosctr: int = 1):
    return to_client(102, tpkt(parameter, data, rosctr))


def userdata(group: int, sub: int, data: bytes = b"\xff\x09\x00\x00", kind: int = 4):
    return S7UserDataParameter(type=kind, function_group=group, subfunction=sub), data


def var(fn: int, db: int, area: int = 0x84):
    return job(S7VarParameter(function=fn, items=[S7VarItem(area=area, db_number=db)]))


def pi(name: bytes, block: bytes = b""):
    return job(S7PIServiceParameter(service_name=name, parameter_block=block))


SETUP = job(S7SetupParameter())
DOWNLOAD = job(S7BlockParameter(function=0x1A, filename=b"_0800001P", trailer=b"\x0d1000332000212"))
UPLOAD = job(S7BlockParameter(function=0x1D, filename=b"_0A00005A"))
SZL = to_server(102, tpkt(*userdata(4, 1, b"\xff\x09\x00\x04\x00\x11\x00\x00"), rosctr=7))
PASSWORD = to_server(102, tpkt(*userdata(5, 1, b"\xff\x09\x00\x08" + bytes(8)), rosctr=7))
MODE_STOP = from_plc(*userdata(0, 0, kind=0), rosctr=7)
CYCLIC_PUSH = from_plc(*userdata(2, 1, kind=0), rosctr=7)
POLL = [SETUP, var(4, 5)]


CASES = [
    Case("an_s7_stop_plc_command_was_sent", [job(S7StopParameter())], [pi(b"P_PROGRAM")]),
    Case("unauthorized_plc_programming", [DOWNLOAD], [DOWNLOAD], quiet_learn=[*POLL, DOWNLOAD]),
    Case("unauthorized_plc_program_upload", [UPLOAD], [UPLOAD], quiet_learn=[*POLL, UPLOAD]),
    Case("unauthorized_plc_configuration_read", [SZL], [SZL], quiet_learn=[*POLL, SZL]),
    Case("unauthorized_plc_configuration_write", [pi(b"_MODU")], [pi(b"_MODU")],
         quiet_learn=[*POLL, pi(b"_MODU")]),
    Case("unauthorized_siemens_s7_execution_of_control_function", [var(5, 5)], [var(4, 5)]),
    Case("unauthorized_siemens_s7_execution_of_user_defined_function", [PASSWORD], [PASSWORD],
         quiet_learn=[*POLL, PASSWORD]),
    Case("unauthorized_access_to_siemens_s7_data_block", [var(4, 7)], [var(4, 5)]),
    Case("plc_operating_mode_changed", [MODE_STOP], [CYCLIC_PUSH]),
]  # fmt: skip


test_triggers, test_quiet = case_tests(CASES, lambda: EngineRun(S7Engine), learn=POLL)


def test_download_alert_names_station_and_block_even_for_jobs_the_plc_sends() -> None:
    block = from_plc(S7BlockParameter(function=0x1B, filename=b"_0800001P"))
    (det,) = of_type(EngineRun(S7Engine).feed([block]), "unauthorized_plc_programming")
    assert (det.fields["source_address"], det.fields["destination_address"]) == (CLIENT, SERVER)
    assert det.fields["block"] == "OB1"
    assert "Download block (function 0x1B) of block OB1" in det.message


def test_insert_block_pi_service_is_programming() -> None:
    dets = EngineRun(S7Engine).feed([pi(b"_INSE", b"\x01\x000800001P")])
    (det,) = of_type(dets, "unauthorized_plc_programming")
    assert det.fields["block"] == "OB1" and "_INSE" in det.message


def test_plc_start_request_makes_the_plc_the_source() -> None:
    (det,) = of_type(EngineRun(S7Engine).feed([pi(b"P_PROGRAM")]), "plc_operating_mode_changed")
    assert det.fields["source_address"] == SERVER


def test_tpkt_split_across_segments_and_two_in_one() -> None:
    stop, szl = job(S7StopParameter())[Raw].load, SZL[Raw].load
    both = stop + szl
    dets = EngineRun(S7Engine).feed(
        [to_server(102, both[:5]), to_server(102, both[5:20]), to_server(102, both[20:])]
    )
    assert {"an_s7_stop_plc_command_was_sent", "unauthorized_plc_configuration_read"} <= set(
        types(dets)
    )


def test_mms_and_cotp_connection_frames_are_ignored() -> None:
    connect = bytes(TPKT(cotp=COTP(pdu_type=0xE0, variable_part=b"\x00\x00\x00\x01\x00")))
    mms = bytes(TPKT(cotp=COTP())) + b"\x01\x00\x01\x00a0"
    assert EngineRun(S7Engine).feed([to_server(102, connect), to_server(102, mms)]) == []
