"""Invalid SMB Message (DoublePulsar Backdoor Implant) (malware).

The DoublePulsar implant answers an SMB1 TRANSACTION2 SESSION_SETUP request with a reply
whose multiplex id is the request's plus 16 (the well-known check sends MID 65 and an
implanted host answers MID 81; Countercept's detection script, nmap's
smb-double-pulsar-backdoor). A normal server echoes the request's MID. The request's MID is
kept per flow; the reply with MID + 16 raises the alert, naming the implanted server as
source. Exact only: nothing is inferred when the request was not seen.
"""

from __future__ import annotations

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.smb import SMB1_TRANS2, TRANS2_SESSION_SETUP, parse_smb
from otwatch.agent.engines.base import Engine
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields

__all__ = ["DoublePulsarEngine"]

DOUBLEPULSAR = "invalid_smb_message_doublepulsar_backdoor_implant"
_SMB_PORTS = frozenset({139, 445})


class DoublePulsarEngine(Engine):
    name = "doublepulsar"
    type_ids = frozenset({DOUBLEPULSAR})
    apps = frozenset({"smb", "netbios"})

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        payload = rec.payload
        if flow is None or len(payload) < 36 or payload[4:8] != b"\xffSMB":
            return None
        header = parse_smb(payload)
        if header is None or header.command != SMB1_TRANS2:
            return None
        if not header.is_response:
            if header.trans2_subcommand == TRANS2_SESSION_SETUP and rec.dport in _SMB_PORTS:
                if flow.state is None:
                    flow.state = {}
                flow.state["trans2_setup_mid"] = header.mid
            return None
        state = flow.state
        request_mid = state.get("trans2_setup_mid") if state else None
        if request_mid is None or header.mid != (request_mid + 16) & 0xFFFF:
            return None
        assert state is not None  # request_mid comes from state
        del state["trans2_setup_mid"]
        return [
            self.detect(
                DOUBLEPULSAR,
                rec.ts_ns,
                f"{rec.src_ip} answered an SMB TRANSACTION2 SESSION_SETUP from {rec.dst_ip} with "
                f"multiplex id {header.mid} (request {request_mid}): the DoublePulsar implant's "
                "reply",
                **endpoint_fields(rec, "smb"),
                request_mid=request_mid,
                reply_mid=header.mid,
            )
        ]
