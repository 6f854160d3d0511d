"""SMB1/SMB2 message headers ([MS-CIFS] 2.2.3.1, [MS-SMB2] 2.2.1) behind NetBIOS framing.

Reads the first message of a TCP 445/139 segment: dialect, command, NT status, response
flag and the multiplex/message id, plus the TRANSACTION2 sub-command of SMB1 requests.
:func:`parse_smb` never raises and returns None when the segment does not start with a
NetBIOS session message carrying an SMB header (for example a mid-message segment).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "LOGON_FAILURES",
    "SMB1_SESSION_SETUP",
    "SMB1_TRANS2",
    "SMB2_SESSION_SETUP",
    "STATUS_MORE_PROCESSING_REQUIRED",
    "STATUS_NOT_IMPLEMENTED",
    "TRANS2_SESSION_SETUP",
    "SmbHeader",
    "parse_smb",
]

SMB1_SESSION_SETUP = 0x73
SMB1_TRANS2 = 0x32
SMB2_SESSION_SETUP = 0x0001
TRANS2_SESSION_SETUP = 0x000E
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016
STATUS_NOT_IMPLEMENTED = 0xC0000002
LOGON_FAILURES = {
    0xC000006D: "STATUS_LOGON_FAILURE",
    0xC000006A: "STATUS_WRONG_PASSWORD",
    0xC0000064: "STATUS_NO_SUCH_USER",
    0xC000006E: "STATUS_ACCOUNT_RESTRICTION",
    0xC0000071: "STATUS_PASSWORD_EXPIRED",
    0xC0000072: "STATUS_ACCOUNT_DISABLED",
    0xC0000234: "STATUS_ACCOUNT_LOCKED_OUT",
}
_smb1 = struct.Struct("<4sBIBH2x8x2xHHHH").unpack_from
_smb2 = struct.Struct("<4sH2xIHHIIQ").unpack_from
_u16 = struct.Struct("<H").unpack_from


@dataclass(frozen=True, slots=True)
class SmbHeader:
    version: int
    """1 for SMB1 (CIFS), 2 for SMB2/3."""
    command: int
    status: int
    is_response: bool
    mid: int
    """SMB1 multiplex id, or the low 16 bits of the SMB2 message id."""
    trans2_subcommand: int | None = None
    """For SMB1 TRANSACTION2 requests: the first setup word (the sub-command)."""


def parse_smb(payload: bytes) -> SmbHeader | None:
    if len(payload) < 4 + 32 or payload[0] != 0:
        return None
    try:
        body = payload[4:]
        magic = body[:4]
        if magic == b"\xffSMB":
            _m, command, status, flags, _flags2, _tid, _pid, _uid, mid = _smb1(body, 0)
            response = bool(flags & 0x80)
            subcommand = None
            # TRANSACTION2 request: WordCount (offset 32) >= 15 with one setup word at
            # parameter word 14 (offset 33 + 28).
            if command == SMB1_TRANS2 and not response and len(body) >= 63 and body[32] >= 15:
                subcommand = _u16(body, 61)[0]
            return SmbHeader(1, command, status, response, mid, subcommand)
        if magic == b"\xfeSMB" and len(body) >= 64:
            _m, size, status, command, _credits, flags, _next, message_id = _smb2(body, 0)
            if size != 64:
                return None
            return SmbHeader(2, command, status, bool(flags & 1), message_id & 0xFFFF)
    except (struct.error, IndexError):
        return None
    return None
