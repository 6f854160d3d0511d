"""Database sign-in outcomes in server replies: PostgreSQL, MySQL/MariaDB and MS-SQL (TDS).

Each function reads the start of one server-to-client segment and says whether it reports a
successful or failed sign-in, or neither (None). Only exact markers count:

- PostgreSQL: ``AuthenticationOk`` (``R``, length 8, code 0), or an ``ErrorResponse`` with
  SQLSTATE 28P01 (invalid password) or 28000 (invalid authorization).
- MySQL: the first OK (``0x00``) or ERR (``0xFF``) packet after the server greeting, on a
  connection whose greeting was seen (the caller keeps that state); ERR 1045 is access denied.
- TDS: a tabular-result packet whose leading ENVCHANGE/INFO/ERROR tokens include LOGINACK
  (success) or ERROR 18456 ("Login failed for user").
"""

from __future__ import annotations

import struct

__all__ = [
    "FAIL",
    "OK",
    "is_mysql_greeting",
    "mysql_login_result",
    "postgres_login_result",
    "tds_login_result",
]

OK, FAIL = "ok", "fail"
_i32 = struct.Struct("!I").unpack_from
_le16 = struct.Struct("<H").unpack_from
_le32 = struct.Struct("<I").unpack_from
_PG_AUTH_OK = b"R\x00\x00\x00\x08\x00\x00\x00\x00"
_PG_AUTH_FAILED = frozenset({"28P01", "28000"})
_TDS_TOKENS_WITH_LENGTH = frozenset({0xE3, 0xAB, 0xAA, 0xAD})
_TDS_LOGIN_FAILED = 18456
_MYSQL_ACCESS_DENIED = 1045


def postgres_login_result(payload: bytes) -> tuple[str, str] | None:
    if payload.startswith(_PG_AUTH_OK):
        return OK, "AuthenticationOk"
    if len(payload) < 6 or payload[0] != 0x45:  # 'E'
        return None
    length = _i32(payload, 1)[0]
    if length < 5 or length > 4096:
        return None
    body = payload[5 : 1 + length]
    for field in body.split(b"\x00"):
        if field[:1] == b"C":
            code = field[1:].decode("ascii", "replace")
            return (FAIL, f"SQLSTATE {code}") if code in _PG_AUTH_FAILED else None
    return None


def is_mysql_greeting(payload: bytes) -> bool:
    """Server greeting: sequence 0, protocol version 10, as the first server packet."""
    return len(payload) > 5 and payload[3] == 0 and payload[4] == 0x0A


def mysql_login_result(payload: bytes) -> tuple[str, str] | None:
    """Outcome of the server packet after a greeting; None for an auth-switch/more-data step."""
    if len(payload) < 5:
        return None
    length = payload[0] | payload[1] << 8 | payload[2] << 16
    seq, marker = payload[3], payload[4]
    if seq < 2 or length < 1:
        return None
    if marker == 0x00 and length >= 7:
        return OK, "OK packet"
    if marker == 0xFF and len(payload) >= 7:
        code = _le16(payload, 5)[0]
        if code == _MYSQL_ACCESS_DENIED:
            return FAIL, "error 1045 (access denied)"
    return None


def tds_login_result(payload: bytes) -> tuple[str, str] | None:
    if len(payload) < 11 or payload[0] != 0x04:
        return None
    off, size = 8, len(payload)
    for _ in range(32):
        if off + 3 > size:
            return None
        token = payload[off]
        if token not in _TDS_TOKENS_WITH_LENGTH:
            return None
        length = _le16(payload, off + 1)[0]
        if token == 0xAD:
            return OK, "LOGINACK"
        if token == 0xAA and off + 7 <= size:
            number = _le32(payload, off + 3)[0]
            if number == _TDS_LOGIN_FAILED:
                return FAIL, "error 18456 (login failed)"
        off += 3 + length
    return None
