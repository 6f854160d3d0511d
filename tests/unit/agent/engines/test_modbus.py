"""Modbus/TCP engine: each type triggers on its traffic and stays quiet on near misses."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pytest

from otwatch.agent.engines.modbus import ModbusEngine
from tests.otframes import CLIENT, MIN, SERVER, EngineRun, of_type, to_client, to_server, types


def mbap(pdu: bytes, unit: int = 1, tid: int = 1, proto: int = 0) -> bytes:
    return struct.pack(">HHHB", tid, proto, len(pdu) + 1, unit) + pdu


def req(fc: int, body: bytes = b"", **kw):
    return to_server(502, mbap(bytes([fc]) + body, **kw))


def resp(fc: int, body: bytes = b"", **kw):
    return to_client(502, mbap(bytes([fc]) + body, **kw))


def read(address: int = 0, count: int = 10, fc: int = 3):
    return req(fc, struct.pack(">HH", address, count))


def ident(revision: bytes):
    objects = b"".join(bytes([i, len(v)]) + v for i, v in enumerate((b"ACME", b"PLC-1", revision)))
    return resp(0x2B, bytes([0x0E, 0x01, 0x01, 0x00, 0x00, 0x03]) + objects)


POLL = [read(0, 10), resp(3, b"\x14" + bytes(20))]


@dataclass
class Case:
    type_id: str
    trigger: list
    quiet: list
    learn: list = field(default_factory=lambda: list(POLL))
    step_ns: int = 1_000_000
    quiet_learn: list | None = None


CASES = [
    Case("unpermitted_usage_of_modbus_function_code",
         [req(16, b"\x00\x64\x00\x02\x04\x00\x01\x00\x02")], [read(0, 10)]),
    Case("modbus_address_range_violation", [read(100, 2)], [read(4, 4)]),
    Case("unpermitted_modbus_schneider_electric_extension", [req(90, b"\x00\x02")],
         [req(90, b"\x00\x02")], quiet_learn=[*POLL, req(90, b"\x00\x02")]),
    Case("illegal_modbus_operation_function_code_zero", [req(0, b"\x00\x00")], [read()]),
    Case("illegal_modbus_operation_exception_raised_by_master", [req(0x83, b"\x02")],
         [resp(0x83, b"\x02")]),
    Case("usage_of_a_reserved_function_code", [req(41, b"\x00\x00")], [req(65, b"\x00\x00")]),
    Case("illegal_protocol_version", [to_server(502, mbap(b"\x03\x00\x00\x00\x01", proto=7))],
         [read()]),
    Case("modbus_exception", [resp(0x83, b"\x02")], [resp(3, b"\x02\x00\x01")]),
    Case("function_code_raised_unauthorized_exception", [resp(0x83, b"\x03")],
         [resp(0x83, b"\x02")], learn=[*POLL, resp(0x83, b"\x02")]),
    Case("slave_device_received_illegal_function_code", [resp(0x81, b"\x01")],
         [resp(0x81, b"\x02")]),
    Case("slave_device_received_illegal_data_address_parameter", [resp(0x83, b"\x02")],
         [resp(0x83, b"\x03")]),
    Case("slave_device_received_illegal_data_value_parameter", [resp(0x83, b"\x03")],
         [resp(0x83, b"\x02")]),
    Case("slave_device_unrecoverable_failure", [resp(0x83, b"\x04")], [resp(0x83, b"\x06")]),
    Case("suspicion_of_unresponsive_modbus_device", [read()] * 7,
         [read(), resp(3, b"\x02\x00\x01")] * 7, step_ns=2 * MIN),
    Case("controller_reset", [req(8, b"\x00\x01\x00\x00")], [req(8, b"\x00\x00\x12\x34")]),
    Case("plc_operating_mode_changed", [req(8, b"\x00\x04\x00\x00")],
         [req(8, b"\x00\x0a\x00\x00")]),
    Case("modbus_firmware_version_changed", [ident(b"V2.1")], [ident(b"V1.0")],
         learn=[*POLL, ident(b"V1.0")]),
    Case("excessive_malformed_packets_in_a_single_session",
         [to_server(502, b"\x00\x01\x00\x00\x00\x00\x01\x03"),
          to_server(502, b"\x00\x02\x00\x00\x00\x00\x01\x03")],
         [to_server(502, b"\x00\x01\x00\x00\x00\x00\x01\x03"), read()]),
]  # fmt: skip


def engine_run() -> EngineRun:
    return EngineRun(ModbusEngine, settings={"modbus": {"enable": ("*",)}})


@pytest.mark.parametrize("case", CASES, ids=[c.type_id for c in CASES])
def test_triggers(case: Case) -> None:
    run = engine_run()
    run.learn(case.learn)
    assert case.type_id in types(run.feed(case.trigger, case.step_ns))


@pytest.mark.parametrize("case", CASES, ids=[c.type_id for c in CASES])
def test_quiet(case: Case) -> None:
    run = engine_run()
    run.learn(case.learn if case.quiet_learn is None else case.quiet_learn)
    assert case.type_id not in types(run.feed(case.quiet, case.step_ns))


def test_unpermitted_write_message_names_the_operation() -> None:
    run = engine_run()
    run.learn(POLL)
    (det,) = of_type(run.feed([req(16, b"\x00\x64\x00\x02\x04\x00\x01\x00\x02")]),
                     "unpermitted_usage_of_modbus_function_code")  # fmt: skip
    assert det.message == (
        f"{CLIENT} wrote 2 holding registers at 100 on {SERVER} (unit 1, Modbus function 16),"
        " not seen during learning"
    )
    assert det.fields["source_address"] == CLIENT
    assert det.fields["destination_mac"] == "02:00:00:00:00:14"
    assert det.fields["function_code"] == 16


def test_nothing_policy_is_raised_while_learning() -> None:
    run = engine_run()
    assert not of_type(run.learn([req(16, b"\x00\x64\x00\x01\x02\x00\x01")]),
                       "unpermitted_usage_of_modbus_function_code")  # fmt: skip


def test_off_by_default_types_need_enabling() -> None:
    run = EngineRun(ModbusEngine)
    assert types(run.feed([req(0, b"\x00\x00"), resp(0x83, b"\x02")])) == {"modbus_exception": 1}


def test_learned_request_signature_is_cached_and_values_do_not_matter() -> None:
    run = engine_run()
    run.learn([req(6, b"\x00\x05\x00\x01"), resp(6, b"\x00\x05\x00\x01")])
    assert run.feed([req(6, b"\x00\x05\x00\x02")]) == []
    flow_state = next(iter(run.flows)).state["modbus"]
    assert len(flow_state.ok) == 1
    assert types(run.feed([req(6, b"\x00\xc8\x00\x02")])) == {"modbus_address_range_violation": 1}


def test_two_pdus_in_one_segment_are_both_judged() -> None:
    run = engine_run()
    run.learn(POLL)
    two = mbap(b"\x03\x00\x00\x00\x0a") + mbap(b"\x10\x00\x64\x00\x01\x02\x00\x01", tid=2)
    assert types(run.feed([to_server(502, two)])) == {
        "unpermitted_usage_of_modbus_function_code": 1
    }


def test_a_repeated_refused_request_repeats_its_detections_with_its_own_time() -> None:
    run = EngineRun(ModbusEngine)
    run.learn(POLL)
    write = req(16, b"\x00\x64\x00\x02\x04\x00\x01\x00\x02")
    first = run.feed([write, write, write])
    assert types(first) == {"unpermitted_usage_of_modbus_function_code": 3}
    assert len({d.ts_ns for d in first}) == 3
    assert {(d.dedup_key, d.message, tuple(d.fields.items())) for d in first} == {
        (first[0].dedup_key, first[0].message, tuple(first[0].fields.items()))
    }


def test_a_fact_merged_into_the_baseline_ends_the_repetition() -> None:
    """Another worker (or the store) teaches the function code: the next request is allowed."""
    run = EngineRun(ModbusEngine)
    run.learn(POLL)
    write = req(16, b"\x00\x64\x00\x02\x04\x00\x01\x00\x02")
    assert run.feed([write, write])
    run.ctx.baseline.merge("modbus_fc", f"{CLIENT}>{SERVER}:16")
    assert not of_type(run.feed([write]), "unpermitted_usage_of_modbus_function_code")
