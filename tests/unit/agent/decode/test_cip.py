"""EtherNet/IP + CIP struct parser: messages, paths, wrappers, identity, against hand-built
messages and the corpus (cross-checked with Scapy's enipTCP header and tshark's counts)."""

from __future__ import annotations

import struct
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib.enipTCP import ENIPTCP

from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.decode.cip import (
    CipRequest,
    cip_message,
    class_name,
    embedded_requests,
    embedded_responses,
    forward_open_connection,
    frame_length,
    identity_from_attributes,
    list_identity,
    parse_enip,
    parse_path,
    parse_request,
    parse_response,
    pccc_command,
    service_name,
)
from otwatch.agent.decode.headers import decode


def enip_payloads(path):
    with open_capture(path) as capture:
        for frame in capture:
            rec = decode(*frame)
            if rec.payload and 44818 in (rec.sport, rec.dport):
                yield rec.payload


def test_paths() -> None:
    assert parse_path(bytes([0x20, 0x8E, 0x24, 0x01])) == (0x8E, 1, None, None, None)
    assert parse_path(bytes([0x21, 0, 0x34, 0x12, 0x25, 0, 0x02, 0x01, 0x30, 7])) == (
        0x1234, 0x102, 7, None, None,
    )  # fmt: skip
    assert parse_path(b"\x91\x05Motor\x00\x91\x03Run\x00")[3] == "Motor.Run"
    assert parse_path(bytes([0x01, 0x00, 0x20, 0x02, 0x24, 0x01]))[:2] == (2, 1)  # port segment
    assert parse_path(bytes([0x20]))[0] is None  # truncated


def test_request_response_and_wrappers() -> None:
    inner = bytes([0x07, 2, 0x20, 0x8E, 0x24, 0x01])
    msp_data = struct.pack("<HH", 1, 4) + inner
    msp = parse_request(bytes([0x0A, 2, 0x20, 0x02, 0x24, 0x01]) + msp_data)
    assert msp is not None and [r.service for r in embedded_requests(msp)] == [0x07]
    send = CipRequest(0x52, 0x06, 1, None, None, b"\x0a\x05" + struct.pack("<H", 6) + inner)
    assert [r.cls for r in embedded_requests(send)] == [0x8E]
    reply = parse_response(bytes([0x8A, 0, 0, 0]) + struct.pack("<HH", 1, 4) + b"\x87\x00\x14\x00")
    assert reply is not None and [r.status for r in embedded_responses(reply)] == [0x14]
    assert parse_response(bytes([0x8E, 0, 0x1F, 1, 0x05, 0x01])).extended_status == (0x0105,)
    assert parse_request(b"\x8e\x00") is None and parse_response(b"\x0e\x00\x00\x00") is None


def test_names() -> None:
    assert service_name(0x07) == "Stop"
    assert service_name(0x54, 0x06) == "Forward_Open"
    assert service_name(0x4C, None, "Tag") == "Read_Tag"
    assert service_name(0x4D, 0xA1) == "service 0x4D"
    assert class_name(0x01) == "class 0x01 (Identity)" and class_name(0xA1) == "class 0xA1"


def test_forward_open_and_pccc() -> None:
    conn_path = bytes([0x20, 0x04, 0x24, 0x01, 0x2C, 0x65])
    data = bytes(34) + b"\x01" + bytes([3]) + conn_path
    assert forward_open_connection(CipRequest(0x54, 6, 1, None, None, data)) == (1, conn_path)
    large = bytes(38) + b"\x83" + bytes([3]) + conn_path
    assert forward_open_connection(CipRequest(0x5B, 6, 1, None, None, large)) == (3, conn_path)
    assert pccc_command(bytes([7, 1, 0, 1, 2, 3, 4, 0x0F, 0, 1, 0, 0xA2])) == (0x0F, 0xA2)
    assert pccc_command(b"\x09") is None


def test_framing() -> None:
    header = struct.pack("<HHII8sI", 0x6F, 10, 1, 0, bytes(8), 0)
    assert frame_length(header, 0) == 34
    assert frame_length(b"\x6f\x00", 0) is None
    assert frame_length(b"\x99\x99\x00\x00", 0) == 0


def test_corpus_counts_and_scapy_header_agree(pcaps) -> None:
    requests, replies = Counter(), Counter()
    identities = []
    for name in ("enip_cip_stop.pcap", "enip_remote_mode_change.pcap",
                 "enip_firmware_update.pcap", "enip_list_identity.pcap"):  # fmt: skip
        for i, payload in enumerate(enip_payloads(pcaps / name)):
            header = parse_enip(payload)
            assert header is not None
            if i < 200:  # Scapy's header agrees (its item decoding does not: see decode.cip)
                scapy_header = ENIPTCP(payload)
                assert (scapy_header.commandId, scapy_header.length, scapy_header.session) == (
                    header.command, header.length, header.session,
                )  # fmt: skip
            if header.command == 0x63 and header.body:
                identities.append(list_identity(header.body))
            message = cip_message(header.command, header.body)
            if message is None:
                continue
            msg = message[0]
            if msg[0] & 0x80:
                reply = parse_response(msg)
                replies[(reply.service, reply.status)] += 1
                if reply.service == 0x01 and reply.status == 0:
                    identities.append(identity_from_attributes(reply.data))
            else:
                req = parse_request(msg)
                requests[(req.service, req.cls)] += 1
    # tshark: 5,243 firmware transfer requests (class 0xA1 service 0x4D), one Identity reset,
    # CIP Stop (0x07) to class 0x8E in enip_cip_stop and enip_remote_mode_change
    assert requests[(0x4D, 0xA1)] == 5243
    assert requests[(0x05, 0x01)] == 1
    assert requests[(0x07, 0x8E)] == 2
    assert replies[(0x0E, 0x14)] == 1 and replies[(0x51, 0x08)] == 1
    assert {i.product_name for i in identities} == {"1756-ENBT/A"}
    assert {i.revision for i in identities} == {"4.003"}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_never_raises(data: bytes) -> None:
    header = parse_enip(data)
    if header is not None:
        cip_message(header.command, header.body)
        list_identity(header.body)
    req = parse_request(data)
    if req is not None:
        embedded_requests(req)
        forward_open_connection(req)
    resp = parse_response(data)
    if resp is not None:
        embedded_responses(resp)
    parse_path(data)
    identity_from_attributes(data)
    pccc_command(data)
    if data:
        frame_length(data, 0)
