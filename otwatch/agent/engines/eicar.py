"""Malware Test File Detected - EICAR AV Success (malware): the EICAR anti-virus test string
in any TCP or UDP payload.

The 68-byte string is searched in every payload; for TCP a string split across two
consecutive segments of a flow is found too (the end of a segment that starts the string is
kept in the flow's state until the next segment). One detection per flow.
"""

from __future__ import annotations

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields

__all__ = ["EICAR", "EicarEngine"]

EICAR_TYPE = "malware_test_file_detected_eicar_av_success"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
_SIZE = len(EICAR)
_TAIL = _SIZE - 1


class EicarEngine(Engine):
    name = "eicar"
    type_ids = frozenset({EICAR_TYPE})
    apps = None

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        payload = rec.payload
        if not payload:
            return None
        state = flow.state if flow is not None else None
        carry = state.get("eicar") if state else None
        # 88 is "X": an int membership test is much cheaper than a bytes search
        if 88 not in payload and carry is None:
            return None
        if rec.sport is None:
            return None
        found = len(payload) >= _SIZE and EICAR in payload
        if carry is not None:
            del state["eicar"]  # type: ignore[index]
            found = found or EICAR in carry + payload[:_TAIL]
        if not found:
            if rec.ip_proto == 6 and flow is not None and 88 in payload[-_TAIL:]:
                self._carry(payload, flow)
            return None
        if state is None and flow is not None:
            state = flow.state = {}
        if state is not None:
            if state.get("eicar_reported"):
                return None
            state["eicar_reported"] = True
        proto = (
            flow.app if flow is not None and flow.app else ("tcp" if rec.ip_proto == 6 else "udp")
        )
        return [
            self.detect(
                EICAR_TYPE,
                rec.ts_ns,
                f"EICAR anti-virus test file sent from {rec.src_ip}:{rec.sport} to "
                f"{rec.dst_ip}:{rec.dport} over {proto}",
                **endpoint_fields(rec, proto),
            )
        ]

    @staticmethod
    def _carry(payload: bytes, flow: Flow) -> None:
        """Keep the segment's end if it could be the start of the string."""
        start = max(0, len(payload) - _TAIL)
        pos = payload.find(b"X", start)
        while pos >= 0:
            if EICAR.startswith(payload[pos:]):
                if flow.state is None:
                    flow.state = {}
                flow.state["eicar"] = payload[pos:]
                return
            pos = payload.find(b"X", pos + 1)
