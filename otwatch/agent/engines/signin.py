"""Sign-in observations shared by the login detectors: attempts, failures and successes.

One packet yields at most one :class:`SignIn`:

- ``attempt``: a TCP SYN to a remote-login port (SSH 22, telnet 23, RDP 3389, VNC 5900), or
  an FTP ``PASS`` command.
- ``failure``: FTP reply 530, HTTP status 401, an SMB SESSION_SETUP refused with a logon
  failure status, a database sign-in error (PostgreSQL 28P01/28000, MySQL 1045, MS-SQL 18456).
- ``success``: SMB SESSION_SETUP answered with STATUS_SUCCESS, a database sign-in accepted,
  or an SSH session (the client's ``SSH-`` identification string).

``counts`` says whether it is one sign-in attempt for the brute-force counters (an FTP 530
answers a PASS already counted, so it does not). The result is memoised per packet record,
so several engines looking at the same packet decode it once.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.dblogin import (
    FAIL,
    OK,
    is_mysql_greeting,
    mysql_login_result,
    postgres_login_result,
    tds_login_result,
)
from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.smb import (
    LOGON_FAILURES,
    SMB1_SESSION_SETUP,
    SMB2_SESSION_SETUP,
    parse_smb,
)

__all__ = ["DB_PORTS", "LOGIN_PORTS", "SIGNIN_APPS", "SignIn", "signin"]

LOGIN_PORTS = {22: "ssh", 23: "telnet", 3389: "rdp", 5900: "vnc"}
DB_PORTS = {1433: "mssql", 3306: "mysql", 5432: "postgresql"}
SMB_PORTS = frozenset({139, 445})
SIGNIN_APPS = frozenset(
    {"ssh", "telnet", "rdp", "vnc", "ftp", "http", "smb", "netbios", "tds", "mysql", "postgres"}
)
"""Port tags whose packets may carry sign-ins (engines subscribe to these, plus SYNs)."""


@dataclass(frozen=True, slots=True)
class SignIn:
    kind: str
    """``attempt``, ``failure`` or ``success``."""
    service: str
    client: str
    server: str
    detail: str
    counts: bool


_memo: tuple[PacketRecord | None, SignIn | None] = (None, None)


def signin(rec: PacketRecord, flow: Flow | None) -> SignIn | None:
    global _memo
    if _memo[0] is rec:
        return _memo[1]
    result = _classify(rec, flow)
    _memo = (rec, result)
    return result


def _classify(rec: PacketRecord, flow: Flow | None) -> SignIn | None:
    if rec.ip_proto != 6 or rec.src_ip is None or rec.dst_ip is None:
        return None
    src, dst, sport, dport = rec.src_ip, rec.dst_ip, rec.sport, rec.dport
    flags = rec.tcp_flags or 0
    if flags & 0x12 == 0x02:
        service = LOGIN_PORTS.get(dport)  # type: ignore[arg-type]  # None only looks up nothing
        if service is not None:
            return SignIn("attempt", service, src, dst, "connection attempt", True)
        return None
    payload = rec.payload
    if not payload:
        return None
    if dport == 21 and payload[:5].upper() == b"PASS ":
        return SignIn("attempt", "ftp", src, dst, "PASS command", True)
    if sport == 21 and payload.startswith(b"530"):
        line = payload.split(b"\r\n", 1)[0][:120].decode("latin-1")
        return SignIn("failure", "ftp", dst, src, line, False)
    if dport == 22 and payload.startswith(b"SSH-"):
        banner = payload.split(b"\r\n", 1)[0][:80].decode("latin-1")
        return SignIn("success", "ssh", src, dst, banner, False)
    if sport in SMB_PORTS:
        return _smb(rec, src, dst)
    service = DB_PORTS.get(sport)  # type: ignore[arg-type]  # None only looks up nothing
    if service is not None:
        return _database(service, rec, flow, src, dst)
    if payload.startswith(b"HTTP/1.") and payload[8:13] == b" 401 ":
        return SignIn("failure", "http", dst, src, "HTTP 401 Unauthorized", True)
    return None


def _smb(rec: PacketRecord, server: str, client: str) -> SignIn | None:
    header = parse_smb(rec.payload)
    if header is None or not header.is_response:
        return None
    setup = SMB2_SESSION_SETUP if header.version == 2 else SMB1_SESSION_SETUP
    if header.command != setup:
        return None
    if header.status == 0:
        return SignIn(
            "success", "smb", client, server, f"SMB{header.version} session set up", False
        )
    reason = LOGON_FAILURES.get(header.status)
    if reason is None:
        return None
    return SignIn("failure", "smb", client, server, reason, True)


def _database(
    service: str, rec: PacketRecord, flow: Flow | None, server: str, client: str
) -> SignIn | None:
    payload = rec.payload
    if service == "postgresql":
        result = postgres_login_result(payload)
    elif service == "mssql":
        result = tds_login_result(payload)
    else:
        if flow is None:
            return None
        if flow.state is None:
            flow.state = {}
        stage = flow.state.get("mysql")
        if stage is None:
            flow.state["mysql"] = 1 if is_mysql_greeting(payload) else 2
            return None
        if stage != 1:
            return None
        result = mysql_login_result(payload)
        if result is not None:
            flow.state["mysql"] = 2
    if result is None:
        return None
    outcome, detail = result
    if outcome == OK:
        return SignIn("success", service, client, server, detail, False)
    if outcome == FAIL:
        return SignIn("failure", service, client, server, detail, True)
    return None
