"""Brute-force and failed sign-ins: Excessive Login Attempts, Password Guessing Attempt
Detected, Excessive SMB login attempts (anomaly), FTP Login Failed and Database Login Failed
(policy).

Sign-in attempts come from :mod:`otwatch.agent.engines.signin` and are counted per
client/server pair in tumbling windows (a TCP SYN counts once per client port, so
retransmissions are one attempt):

- ``login_threshold`` attempts within ``login_window_s`` (spec: 20 / 1 min) and
  ``guess_threshold`` within ``guess_window_s`` (spec: 100 / 1 min);
- refused SMB session set-ups: ``smb_threshold`` within ``smb_window_s`` (spec: 10 / 10 min);
- database sign-in errors: ``db_threshold`` within ``db_window_s`` (spec: 2 / 5 min);
- every FTP 530 reply is an FTP Login Failed detection (the alert counts them).

The two policy types stay silent while learning, as every policy alert does.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.counters import DistinctCounter, RateCounter
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import mac_text
from otwatch.agent.engines.signin import SIGNIN_APPS, SignIn, signin

__all__ = ["LoginEngine"]

EXCESSIVE_LOGINS = "excessive_login_attempts"
PASSWORD_GUESSING = "password_guessing_attempt_detected"
EXCESSIVE_SMB = "excessive_smb_login_attempts"
FTP_FAILED = "ftp_login_failed"
DB_FAILED = "database_login_failed"


@dataclass(frozen=True)
class Config:
    login_threshold: int = 20
    login_window_s: float = 60.0
    guess_threshold: int = 100
    guess_window_s: float = 60.0
    smb_threshold: int = 10
    smb_window_s: float = 600.0
    db_threshold: int = 2
    db_window_s: float = 300.0
    max_tracked: int = 20_000


class LoginEngine(Engine):
    name = "logins"
    settings_class = Config
    type_ids = frozenset(
        {EXCESSIVE_LOGINS, PASSWORD_GUESSING, EXCESSIVE_SMB, FTP_FAILED, DB_FAILED}
    )
    apps = SIGNIN_APPS

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        n = c.max_tracked
        self.logins = DistinctCounter(c.login_threshold, int(c.login_window_s * 1e9), n)
        self.guesses = DistinctCounter(c.guess_threshold, int(c.guess_window_s * 1e9), n)
        self._serial = 0
        self.smb = RateCounter(c.smb_threshold, int(c.smb_window_s * 1e9), n)
        self.db = RateCounter(c.db_threshold, int(c.db_window_s * 1e9), n)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if rec.ip_proto != 6 or (not rec.payload and (rec.tcp_flags or 0) & 0x12 != 0x02):
            return None
        event = signin(rec, flow)
        if event is None or event.kind == "success":
            return None
        out: list[Detection] = []
        pair, ts = (event.client, event.server), rec.ts_ns
        c = self.config
        if event.counts:
            # a retransmitted SYN is the same attempt: SYNs count once per client port
            if event.detail == "connection attempt":
                attempt: object = rec.sport if rec.src_ip == event.client else rec.dport
            else:
                self._serial += 1
                attempt = -self._serial
            if self.logins.add(pair, attempt, ts):
                out.append(self._make(EXCESSIVE_LOGINS, rec, event, c.login_threshold,
                                      c.login_window_s))  # fmt: skip
            if self.guesses.add(pair, attempt, ts):
                out.append(self._make(PASSWORD_GUESSING, rec, event, c.guess_threshold,
                                      c.guess_window_s))  # fmt: skip
        if event.kind == "failure":
            if event.service == "smb" and self.smb.hit(pair, ts):
                out.append(self._make(EXCESSIVE_SMB, rec, event, c.smb_threshold, c.smb_window_s))
            learning = self.ctx.learning.active
            if event.service == "ftp" and not learning:
                out.append(self._make(FTP_FAILED, rec, event, 1, 0))
            elif (
                event.service in ("mssql", "mysql", "postgresql")
                and self.db.hit(pair, ts)
                and not learning
            ):
                out.append(self._make(DB_FAILED, rec, event, c.db_threshold, c.db_window_s))
        return out or None

    def _make(
        self, type_id: str, rec: PacketRecord, event: SignIn, count: int, window_s: float
    ) -> Detection:
        client_mac, server_mac = rec.src_mac, rec.dst_mac
        if rec.src_ip != event.client:
            client_mac, server_mac = server_mac, client_mac
        if count == 1:
            text = f"{event.service} sign-in by {event.client} on {event.server} failed"
        else:
            what = "failed sign-ins" if event.kind == "failure" else "sign-in attempts"
            text = (
                f"{event.client} made {count} {event.service} {what} on {event.server} within "
                f"{window_s:g} s"
            )
        return self.detect(
            type_id,
            rec.ts_ns,
            f"{text} ({event.detail})",
            source_address=event.client,
            destination_address=event.server,
            source_mac=mac_text(client_mac),
            destination_mac=mac_text(server_mac),
            protocol=event.service,
            attempts=count,
        )
