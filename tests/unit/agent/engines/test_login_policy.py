"""Unauthorized SSH Access / SMB Login / Database Login from packets."""

from __future__ import annotations

import struct

from otwatch.agent.engines.login_policy import LoginPolicyEngine
from tests.factories import SEC, T0, A, B, C, EngineRun, netstore, tcp
from tests.unit.agent.decode.test_smb import smb2

__all__ = ["netstore"]
ENGINES = (LoginPolicyEngine,)
SSH = b"SSH-2.0-OpenSSH_9.6\r\n"
PG_OK = b"R\x00\x00\x00\x08\x00\x00\x00\x00"


def mysql(seq: int, body: bytes) -> bytes:
    return len(body).to_bytes(3, "little") + bytes([seq]) + body


def tds_loginack() -> bytes:
    tokens = b"\xad" + struct.pack("<H", 4) + b"\x01\x74\x00\x00"
    return bytes([4, 1]) + struct.pack("!H", 8 + len(tokens)) + b"\x00\x00\x01\x00" + tokens


def learned(netstore):
    """Learn: A signs in to B over SSH, SMB and PostgreSQL."""
    run = EngineRun.with_store(netstore, ENGINES, learning_s=10)
    run.feed(
        [
            tcp(A, B, 50000, 22, payload=SSH),
            tcp(B, A, 445, 50001, payload=smb2(1, 0, response=True)),
            tcp(B, A, 5432, 50002, payload=PG_OK),
        ],
        start_ns=T0,
    )
    return run


def test_new_sign_ins_after_learning(netstore):
    run = learned(netstore)
    run.feed(
        [
            tcp(C, B, 50000, 22, payload=SSH),
            tcp(B, C, 445, 50001, payload=smb2(1, 0, response=True)),
            tcp(B, C, 5432, 50002, payload=PG_OK),
            tcp(B, C, 1433, 50003, payload=tds_loginack()),
        ],
        start_ns=T0 + 60 * SEC,
    )
    assert run.types() == {
        "unauthorized_ssh_access": 1,
        "unauthorized_smb_login": 1,
        "unauthorized_database_login": 2,
    }
    ssh = run.of("unauthorized_ssh_access")[0]
    assert (ssh.fields["source_address"], ssh.fields["destination_address"]) == (C, B)


def test_mysql_needs_the_greeting(netstore):
    run = learned(netstore)
    ok = mysql(2, b"\x00\x00\x00\x02\x00\x00\x00")
    run.feed([tcp(B, C, 3306, 50009, payload=ok)], start_ns=T0 + 60 * SEC)  # mid-stream: ignored
    assert run.types() == {}
    greeting = mysql(0, b"\x0a8.0.36\x00" + bytes(40))
    run.feed(
        [tcp(B, C, 3306, 50010, payload=greeting), tcp(B, C, 3306, 50010, payload=ok)],
        start_ns=T0 + 70 * SEC,
    )
    assert run.types() == {"unauthorized_database_login": 1}


def test_learned_pairs_and_failures_are_quiet(netstore):
    run = learned(netstore)
    run.feed(
        [
            tcp(A, B, 50100, 22, payload=SSH),
            tcp(B, A, 445, 50101, payload=smb2(1, 0, response=True)),
            tcp(B, A, 5432, 50102, payload=PG_OK),
            tcp(B, C, 445, 50103, payload=smb2(1, 0xC000006D, response=True)),  # refused
            tcp(B, C, 445, 50104, payload=smb2(1, 0xC0000016, response=True)),  # more processing
        ],
        start_ns=T0 + 60 * SEC,
    )
    assert run.types() == {}
