"""SMB1/SMB2 headers behind NetBIOS framing."""

from __future__ import annotations

import struct

from otwatch.agent.decode.smb import (
    SMB1_TRANS2,
    SMB2_SESSION_SETUP,
    TRANS2_SESSION_SETUP,
    parse_smb,
)


def smb1(command: int, status: int = 0, flags: int = 0, mid: int = 1, words: bytes = b"") -> bytes:
    header = struct.pack(
        "<4sBIBH2x8x2xHHHH", b"\xffSMB", command, status, flags, 0xC007, 1, 2, 3, mid
    )
    body = header + words
    return b"\x00" + len(body).to_bytes(3, "big") + body


def smb2(command: int, status: int = 0, response: bool = False) -> bytes:
    header = struct.pack("<4sH2xIHHIIQ", b"\xfeSMB", 64, status, command, 1, int(response), 0, 9)
    header += bytes(64 - len(header))
    return b"\x00" + len(header).to_bytes(3, "big") + header


def trans2_request(mid: int, subcommand: int) -> bytes:
    words = bytes([15]) + struct.pack("<14H", *([0] * 14)) + struct.pack("<H", subcommand)
    return smb1(SMB1_TRANS2, mid=mid, words=words + b"\x00\x00")


def test_smb1_trans2_request_subcommand():
    h = parse_smb(trans2_request(65, TRANS2_SESSION_SETUP))
    assert (h.version, h.command, h.is_response, h.mid, h.trans2_subcommand) == (
        1,
        SMB1_TRANS2,
        False,
        65,
        TRANS2_SESSION_SETUP,
    )


def test_smb2_session_setup_response_status():
    h = parse_smb(smb2(SMB2_SESSION_SETUP, 0xC000006D, response=True))
    assert (h.version, h.command, h.status, h.is_response) == (2, 1, 0xC000006D, True)


def test_not_smb():
    assert parse_smb(b"\x00\x00\x00\x10" + b"\x00" * 40) is None
    assert parse_smb(b"GET / HTTP/1.1\r\n" * 3) is None
    good = trans2_request(1, 14)
    for cut in range(len(good)):
        parse_smb(good[:cut])
