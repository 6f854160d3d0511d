"""EtherNet/IP + CIP engine: each type triggers on its traffic and stays quiet on near misses."""

from __future__ import annotations

import struct

from otwatch.agent.engines.cip import CipEngine
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

CTX = b"ctx00001"


def enip(command: int, body: bytes = b"", status: int = 0, context: bytes = CTX) -> bytes:
    return struct.pack("<HHII8sI", command, len(body), 0x1234, status, context, 0) + body


def cpf(*items: tuple[int, bytes]) -> bytes:
    return struct.pack("<IHH", 0, 0, len(items)) + b"".join(
        struct.pack("<HH", kind, len(data)) + data for kind, data in items
    )


def rr(cip: bytes, context: bytes = CTX, status: int = 0) -> bytes:
    """SendRRData (unconnected explicit message)."""
    return enip(0x6F, cpf((0x0000, b""), (0x00B2, cip)), status, context)


def unit(cip: bytes, seq: int = 1) -> bytes:
    """SendUnitData (connected explicit message)."""
    return enip(0x70, cpf((0x00A1, b"\x01\x02\x03\x04"), (0x00B1, struct.pack("<H", seq) + cip)))


def path(cls: int, instance: int = 1, attribute: int | None = None) -> bytes:
    out = bytes([0x20, cls, 0x24, instance])
    return out + (bytes([0x30, attribute]) if attribute is not None else b"")


def symbol(name: str) -> bytes:
    raw = name.encode()
    return bytes([0x91, len(raw)]) + raw + (b"\x00" if len(raw) % 2 else b"")


def creq(service: int, epath: bytes, data: bytes = b"") -> bytes:
    return bytes([service, len(epath) // 2]) + epath + data


def crsp(service: int, status: int = 0, data: bytes = b"") -> bytes:
    return bytes([service | 0x80, 0, status, 0]) + data


def request(cip: bytes, **kw):
    return to_server(44818, rr(cip, **kw))


def reply(cip: bytes, **kw):
    return to_client(44818, rr(cip, **kw))


def identity(major: int, minor: int) -> list:
    attrs = struct.pack("<HHHBBHI", 1, 12, 58, major, minor, 0x30, 12345) + b"\x0b1756-ENBT/A"
    return [request(creq(0x01, path(0x01))), reply(crsp(0x01, 0, attrs))]


def pccc(cmd: int, fnc: int):
    data = bytes([7]) + struct.pack("<HI", 1, 99) + bytes([cmd, 0]) + b"\x01\x00" + bytes([fnc])
    return request(creq(0x4B, path(0x67), data))


def forward_open(point: int):
    fixed = bytes(34) + b"\x01"  # ... transport class 1 (cyclic I/O)
    conn_path = bytes([0x20, 0x04, 0x24, 0x01, 0x2C, point])
    return request(creq(0x54, path(0x06), fixed + bytes([len(conn_path) // 2]) + conn_path))


READ_ATTR = request(creq(0x0E, path(0x01, 1, 7)))
POLL = [READ_ATTR, reply(crsp(0x0E, 0, b"\x01\x00"))]


CASES = [
    Case("controller_stop", [to_server(44818, unit(creq(0x07, path(0x8E))))],
         [to_server(44818, unit(creq(0x0E, path(0x8E, 1, 1))))]),
    Case("controller_reset", [request(creq(0x05, path(0x01)))], [request(creq(0x05, path(0xF5)))]),
    Case("plc_operating_mode_changed", [request(creq(0x06, path(0x8E)))],
         [request(creq(0x0E, path(0x8E, 1, 1)))]),
    Case("firmware_update", [request(creq(0x4D, path(0xA1), bytes(64)))],
         [request(creq(0x0E, path(0xA1, 1, 1)))]),
    Case("firmware_version_changed", identity(5, 1), identity(4, 3),
         learn=[*POLL, *identity(4, 3)]),
    Case("new_activity_detected_ethernet_ip_protocol_command",
         [to_server(44818, enip(0x0063))], [READ_ATTR]),
    Case("new_activity_detected_cip_class", [request(creq(0x0E, path(0xF5, 1, 5)))],
         [request(creq(0x0E, path(0x01, 1, 1)))]),
    Case("new_activity_detected_cip_class_service", [request(creq(0x01, path(0x01)))],
         [request(creq(0x0E, path(0x01, 1, 1)))]),
    Case("new_activity_detected_cip_symbol", [request(creq(0x4C, symbol("Valve2"), b"\x01\x00"))],
         [request(creq(0x4C, symbol("Motor1"), b"\x01\x00"))],
         learn=[*POLL, request(creq(0x4C, symbol("Motor1"), b"\x01\x00"))]),
    Case("new_activity_detected_cip_pccc_command", [pccc(0x0F, 0xAA)], [pccc(0x0F, 0xA2)],
         learn=[*POLL, pccc(0x0F, 0xA2)]),
    Case("new_activity_detected_ethernet_ip_i_o_connection", [forward_open(0x65)],
         [forward_open(0x64)], learn=[*POLL, forward_open(0x64)]),
    Case("ethernet_ip_encapsulation_protocol_command_failed",
         [to_client(44818, enip(0x0065, status=0x0069))], [to_client(44818, enip(0x0065))]),
    Case("ethernet_ip_cip_service_request_failed",
         [READ_ATTR, reply(crsp(0x0E, 0x14))],
         [READ_ATTR, reply(crsp(0x0E, 0x06)), READ_ATTR, reply(crsp(0x0E, 0))]),
]  # fmt: skip


test_triggers, test_quiet = case_tests(CASES, lambda: EngineRun(CipEngine), learn=POLL)


def test_stop_inside_a_multiple_service_packet() -> None:
    inner = [creq(0x07, path(0x8E)), creq(0x0E, path(0x01, 1, 1))]
    offsets, pos = [], 2 + 2 * len(inner)
    for message in inner:
        offsets.append(pos)
        pos += len(message)
    data = struct.pack("<H", len(inner)) + b"".join(struct.pack("<H", o) for o in offsets)
    msp = creq(0x0A, path(0x02), data + b"".join(inner))
    run = EngineRun(CipEngine)
    run.learn(POLL)
    (det,) = of_type(run.feed([request(msp)]), "controller_stop")
    assert det.fields["class_id"] == 0x8E
    assert (det.fields["source_address"], det.fields["destination_address"]) == (CLIENT, SERVER)


def test_reset_inside_an_unconnected_send() -> None:
    inner = creq(0x05, path(0x01))
    data = b"\x0a\x05" + struct.pack("<H", len(inner)) + inner + b"\x01\x00\x01\x00"
    dets = EngineRun(CipEngine).feed([request(creq(0x52, path(0x06), data))])
    assert "controller_reset" in types(dets)


def test_failed_reply_names_the_class_of_its_request() -> None:
    run = EngineRun(CipEngine)
    dets = run.feed([request(creq(0x0E, path(0xF5, 1, 9)), context=b"req-0042"),
                     reply(crsp(0x0E, 0x14), context=b"req-0042")])  # fmt: skip
    (det,) = of_type(dets, "ethernet_ip_cip_service_request_failed")
    assert det.fields["source_address"] == SERVER
    assert "class 0xF5 (TCP/IP Interface)" in det.message
    assert "attribute not supported" in det.message


def test_message_split_across_segments() -> None:
    whole = unit(creq(0x07, path(0x8E)))
    dets = EngineRun(CipEngine).feed([to_server(44818, whole[:10]), to_server(44818, whole[10:])])
    assert "controller_stop" in types(dets)
