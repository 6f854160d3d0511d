"""Database sign-in outcomes: PostgreSQL, MySQL, TDS."""

from __future__ import annotations

import struct

from otwatch.agent.decode.dblogin import (
    FAIL,
    OK,
    is_mysql_greeting,
    mysql_login_result,
    postgres_login_result,
    tds_login_result,
)


def pg_error(code: str) -> bytes:
    body = b"SFATAL\x00C" + code.encode() + b"\x00Mpassword authentication failed\x00\x00"
    return b"E" + struct.pack("!I", len(body) + 4) + body


def mysql(seq: int, body: bytes) -> bytes:
    return len(body).to_bytes(3, "little") + bytes([seq]) + body


def tds(tokens: bytes) -> bytes:
    return bytes([4, 1]) + struct.pack("!H", 8 + len(tokens)) + b"\x00\x00\x01\x00" + tokens


def test_postgres():
    assert postgres_login_result(b"R\x00\x00\x00\x08\x00\x00\x00\x00S\x00")[0] == OK
    assert postgres_login_result(pg_error("28P01")) == (FAIL, "SQLSTATE 28P01")
    assert postgres_login_result(pg_error("42P01")) is None  # undefined table: not sign-in
    assert postgres_login_result(b"R\x00\x00\x00\x0c\x00\x00\x00\x05salt") is None  # MD5 request


def test_mysql():
    greeting = mysql(0, b"\x0a8.0.36\x00" + bytes(40))
    assert is_mysql_greeting(greeting)
    assert mysql_login_result(mysql(2, b"\x00\x00\x00\x02\x00\x00\x00"))[0] == OK
    denied = mysql(2, b"\xff" + struct.pack("<H", 1045) + b"#28000Access denied")
    assert mysql_login_result(denied) == (FAIL, "error 1045 (access denied)")
    assert mysql_login_result(mysql(2, b"\xfe" + b"mysql_native_password\x00")) is None


def test_tds():
    envchange = b"\xe3" + struct.pack("<H", 3) + b"\x01\x00\x00"
    loginack = b"\xad" + struct.pack("<H", 4) + b"\x01\x74\x00\x00"
    assert tds_login_result(tds(envchange + loginack))[0] == OK
    error = b"\xaa" + struct.pack("<H", 10) + struct.pack("<I", 18456) + b"\x01\x0e\x00\x00\x00\x00"
    assert tds_login_result(tds(error)) == (FAIL, "error 18456 (login failed)")
    assert tds_login_result(tds(b"\x81\x00\x00")) is None  # COLMETADATA: a query result
    for cut in range(12):
        tds_login_result(tds(envchange + loginack)[:cut])
