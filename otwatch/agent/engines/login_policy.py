"""Unauthorized SSH Access, Unauthorized SMB Login, Unauthorized Database Login (policy).

A successful sign-in (see :mod:`otwatch.agent.engines.signin`: an SSH session, an SMB session
set up, a database sign-in accepted) between a client and a server that did not sign in to
each other during learning. While learning, pairs are recorded (baseline kind ``login``, key
``service:client>server``) and nothing is raised.
"""

from __future__ import annotations

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import mac_text
from otwatch.agent.engines.signin import SIGNIN_APPS, signin

__all__ = ["LoginPolicyEngine"]

SSH_ACCESS = "unauthorized_ssh_access"
SMB_LOGIN = "unauthorized_smb_login"
DB_LOGIN = "unauthorized_database_login"
LOGIN_KIND = "login"
_TYPES = {"ssh": SSH_ACCESS, "smb": SMB_LOGIN, "mssql": DB_LOGIN, "mysql": DB_LOGIN,
          "postgresql": DB_LOGIN}  # fmt: skip


class LoginPolicyEngine(Engine):
    name = "login_policy"
    type_ids = frozenset({SSH_ACCESS, SMB_LOGIN, DB_LOGIN})
    apps = SIGNIN_APPS

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self._known = ctx.baseline.kind(LOGIN_KIND)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if not rec.payload:
            return None
        event = signin(rec, flow)
        if event is None or event.kind != "success":
            return None
        type_id = _TYPES.get(event.service)
        if type_id is None:
            return None
        key = f"{event.service}:{event.client}>{event.server}"
        if key in self._known:
            return None
        if self.ctx.learning.active:
            self.ctx.baseline.add(LOGIN_KIND, key, rec.ts_ns, {"detail": event.detail})
            return None
        client_mac, server_mac = rec.src_mac, rec.dst_mac
        if rec.src_ip != event.client:
            client_mac, server_mac = server_mac, client_mac
        return [
            self.detect(
                type_id,
                rec.ts_ns,
                f"{event.client} signed in to {event.server} over {event.service} "
                f"({event.detail}); this pair was not seen during learning",
                source_address=event.client,
                destination_address=event.server,
                source_mac=mac_text(client_mac),
                destination_mac=mac_text(server_mac),
                protocol=event.service,
            )
        ]
