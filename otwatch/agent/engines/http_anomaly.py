"""Malformed or oversized HTTP requests (anomaly): Abnormal HTTP Header Length, Abnormal
Number of Parameters in HTTP Header, Illegal HTTP Header Content, Unexpected message length.

Client-to-server HTTP segments are scanned line by line while a request head is open
(from a segment starting with a method token to the empty line), carrying the current line
length across segments, so a long line split over many segments is measured whole:

- a header line longer than ``max_header_line`` bytes (default 8190, Apache's limit);
- more than ``max_headers`` header fields (default 100, Apache's ``LimitRequestFields``);
- a control byte in a header value, a field name with non-token characters, or a line
  without a colon (from the head's first segment);
- a request line, or an FTP command line, of ``max_text_length`` bytes or more (spec: text
  length 32768).

Each is reported at most once per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.httpmsg import looks_like_request, parse_http
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields

__all__ = ["HttpAnomalyEngine"]

HEADER_LENGTH = "abnormal_http_header_length"
HEADER_COUNT = "abnormal_number_of_parameters_in_http_header"
ILLEGAL_CONTENT = "illegal_http_header_content"
MESSAGE_LENGTH = "unexpected_message_length"
_BITS = {HEADER_LENGTH: 1, HEADER_COUNT: 2, ILLEGAL_CONTENT: 4, MESSAGE_LENGTH: 8}


@dataclass(frozen=True)
class Config:
    max_header_line: int = 8190
    max_headers: int = 100
    max_text_length: int = 32768


class _Head:
    """Scan state of the open request head of one flow."""

    __slots__ = ("headers", "line", "open", "reported")

    def __init__(self) -> None:
        self.open = True
        self.line = 0  # bytes of the current line so far
        self.headers = -1  # -1 while on the request line
        self.reported = 0


class HttpAnomalyEngine(Engine):
    name = "http_anomaly"
    settings_class = Config
    type_ids = frozenset({HEADER_LENGTH, HEADER_COUNT, ILLEGAL_CONTENT, MESSAGE_LENGTH})
    apps = frozenset({"http", "ftp"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = engine_config(Config, ctx.settings.get(self.name), self.name)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        payload = rec.payload
        if not payload or flow is None or rec.dport != flow.server_port:
            return None
        if flow.app == "ftp":
            return self._ftp(rec, flow, payload)
        state = flow.state
        if state is None:
            state = flow.state = {}
        head = state.get("http_head")
        out: list[Detection] = []
        if looks_like_request(payload):
            head = state["http_head"] = _Head()
            parsed = parse_http(payload)
            if parsed is not None and parsed.illegal:
                self._report(out, head, ILLEGAL_CONTENT, rec, f"illegal header: {parsed.illegal}")
        elif head is None or not head.open:
            return None
        self._scan(out, head, rec, payload)
        return out or None

    def _scan(self, out: list[Detection], head: _Head, rec: PacketRecord, data: bytes) -> None:
        c = self.config
        pos, size = 0, len(data)
        while head.open and pos <= size:
            newline = data.find(b"\n", pos)
            end = size if newline < 0 else newline
            head.line += end - pos
            length = head.line
            if head.headers < 0:
                if length >= c.max_text_length:
                    self._report(out, head, MESSAGE_LENGTH, rec,
                                 f"request line of {length}+ bytes")  # fmt: skip
            elif length > c.max_header_line:
                self._report(out, head, HEADER_LENGTH, rec, f"header line of {length}+ bytes")
            if newline < 0:
                return
            if head.headers >= 0 and length <= 1:  # the empty line ("\r\n") ends the head
                head.open = False
                return
            head.headers += 1
            if head.headers > c.max_headers:
                self._report(out, head, HEADER_COUNT, rec, f"more than {c.max_headers} headers")
            head.line = 0
            pos = newline + 1

    def _ftp(self, rec: PacketRecord, flow: Flow, data: bytes) -> list[Detection] | None:
        state = flow.state
        if state is None:
            state = flow.state = {}
        line = state.get("ftp_line", 0)
        longest = pos = 0
        while True:
            newline = data.find(b"\n", pos)
            if newline < 0:
                line += len(data) - pos
                longest = max(longest, line)
                break
            longest = max(longest, line + newline - pos)
            line, pos = 0, newline + 1
        state["ftp_line"] = line
        limit = self.config.max_text_length
        if longest < limit or state.get("ftp_reported"):
            return None
        state["ftp_reported"] = True
        return [
            self.detect(
                MESSAGE_LENGTH,
                rec.ts_ns,
                f"{rec.src_ip} sent an FTP command line of {longest}+ bytes to {rec.dst_ip} "
                f"(limit {limit})",
                **endpoint_fields(rec, "ftp"),
                length=longest,
            )
        ]

    def _report(
        self, out: list[Detection], head: _Head, type_id: str, rec: PacketRecord, what: str
    ) -> None:
        bit = _BITS[type_id]
        if head.reported & bit:
            return
        head.reported |= bit
        out.append(
            self.detect(
                type_id,
                rec.ts_ns,
                f"{rec.src_ip} sent an HTTP request to {rec.dst_ip} with {what}",
                **endpoint_fields(rec, "http"),
                anomaly=what,
            )
        )
