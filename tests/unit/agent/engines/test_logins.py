"""Brute force and failed sign-ins from packets: Excessive Login Attempts, Password Guessing,
Excessive SMB login attempts, FTP Login Failed, Database Login Failed."""

from __future__ import annotations

import struct

from otwatch.agent.engines.logins import LoginEngine
from tests.factories import SEC, T0, A, B, EngineRun, netstore, syn, tcp
from tests.unit.agent.decode.test_smb import smb2

__all__ = ["netstore"]
ENGINES = (LoginEngine,)


def pg_failure() -> bytes:
    body = b"SFATAL\x00C28P01\x00Mpassword authentication failed\x00\x00"
    return b"E" + struct.pack("!I", len(body) + 4) + body


def test_twenty_ssh_attempts_in_a_minute(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([syn(A, B, 22, sport=50000 + i) for i in range(20)], SEC, start_ns=T0)
    [det] = run.of("excessive_login_attempts")
    assert (det.fields["source_address"], det.fields["protocol"]) == (A, "ssh")
    assert not run.of("password_guessing_attempt_detected")


def test_hundred_attempts_is_password_guessing(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([syn(A, B, 3389, sport=50000 + i) for i in range(100)], SEC // 2, start_ns=T0)
    assert run.types() == {"excessive_login_attempts": 1, "password_guessing_attempt_detected": 1}


def test_ftp_pass_commands_and_530_replies(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    packets = []
    for i in range(20):
        packets.append(tcp(A, B, 50000, 21, payload=f"PASS guess{i}\r\n".encode()))
        packets.append(tcp(B, A, 21, 50000, payload=b"530 Login incorrect.\r\n"))
    run.feed(packets, start_ns=T0)
    assert run.types() == {"excessive_login_attempts": 1, "ftp_login_failed": 20}
    det = run.of("ftp_login_failed")[0]
    assert (det.fields["source_address"], det.fields["destination_address"]) == (A, B)


def test_http_401_and_smb_logon_failures(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([tcp(B, A, 80, 50000, payload=b"HTTP/1.1 401 Unauthorized\r\n\r\n")] * 20, start_ns=T0)
    assert run.types() == {"excessive_login_attempts": 1}
    run = EngineRun.with_store(netstore, ENGINES)
    refused = smb2(1, 0xC000006D, response=True)
    run.feed([tcp(B, A, 445, 50000, payload=refused)] * 10, 30 * SEC, start_ns=T0)
    assert run.types() == {"excessive_smb_login_attempts": 1}


def test_database_login_failures(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [tcp(B, A, 5432, 50000 + i, payload=pg_failure()) for i in range(2)], 60 * SEC, start_ns=T0
    )
    [det] = run.of("database_login_failed")
    assert (det.fields["source_address"], det.fields["protocol"]) == (A, "postgresql")


def test_normal_sign_ins_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([syn(A, B, 22, sport=50000 + i) for i in range(19)], SEC, start_ns=T0)
    run.feed(
        [syn(A, B, 22, sport=50000) for _ in range(40)], start_ns=T0 + 10 * SEC
    )  # retransmissions
    run.feed([tcp(A, B, 50000, 21, payload=b"USER bob\r\n")] * 30, start_ns=T0 + 200 * SEC)
    run.feed([tcp(B, A, 5432, 50000, payload=pg_failure())], start_ns=T0 + 300 * SEC)  # one failure
    run.feed([tcp(B, A, 5432, 50001, payload=pg_failure())], start_ns=T0 + 700 * SEC)  # 400 s later
    run.feed(
        [tcp(B, A, 445, 50000, payload=smb2(1, 0, response=True))] * 20, start_ns=T0 + 900 * SEC
    )
    assert run.types() == {}


def test_policy_failures_are_silent_while_learning(netstore):
    run = EngineRun.with_store(netstore, ENGINES, learning_s=60)
    run.feed([tcp(B, A, 21, 50000, payload=b"530 Login incorrect.\r\n")] * 3, start_ns=T0)
    run.feed([tcp(B, A, 5432, 50000, payload=pg_failure())] * 3, start_ns=T0)
    assert run.types() == {}
