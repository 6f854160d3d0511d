"""Malware Test File Detected - EICAR AV Success (malware): the EICAR anti-virus test string
in any TCP or UDP payload.

The 68-byte string is searched in every payload; for TCP a string split across two
consecutive segments of a flow is found too (the end of a segment that starts the string is
kept in the flow's state until the next segment). One detection per flow.
"""

from __future__ import annotations

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
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

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self._carried = 0
        """Segment ends kept so far: while none is, no flow's state needs looking at."""

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        payload = rec.payload
        # 88 is "X": an int membership test is much cheaper than a bytes search
        if 88 not in payload and (not payload or not self._carried):
            return None
        state = flow.state if flow is not None else None
        carry = state.get("eicar") if state else None
        if carry is None and 88 not in payload:
            return None
        if rec.sport is None:
            return None
        found = len(payload) >= _SIZE and EICAR in payload
        if carry is not None:
            assert state is not None  # carry comes from state
            del state["eicar"]
            self._carried -= 1
            found = found or EICAR in carry + payload[:_TAIL]
        if not found:
            if rec.ip_proto == 6 and flow is not None and self._carry(payload, flow):
                self._carried += 1
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
    def _carry(payload: bytes, flow: Flow) -> bool:
        """Keep the segment's end if it could be the start of the string: one that begins
        with "X5O" within the last 67 bytes, or ends in "X" or "X5"."""
        size = len(payload)
        pos = payload.find(b"X5O", max(0, size - _TAIL))
        while pos >= 0 and not EICAR.startswith(payload[pos:]):
            pos = payload.find(b"X5O", pos + 1)
        if pos < 0:
            if payload.endswith(b"X5"):
                pos = size - 2
            elif payload[-1] == 88:
                pos = size - 1
            else:
                return False
        if flow.state is None:
            flow.state = {}
        flow.state["eicar"] = payload[pos:]
        return True
