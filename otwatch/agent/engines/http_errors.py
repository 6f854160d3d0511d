"""HTTP Client Error (operational): a burst of 4xx answers to one client from one server.

Counts HTTP responses with a 4xx status per client/server pair (401 and 407 are sign-in
challenges, counted by the login detector instead); ``threshold`` within ``window_s``
(default 20 / 1 min) raises an alert naming the client that sent the failing requests.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.counters import RateCounter
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import mac_text

__all__ = ["HttpErrorEngine"]

HTTP_CLIENT_ERROR = "http_client_error"
_CHALLENGES = (b"401", b"407")


@dataclass(frozen=True)
class Config:
    threshold: int = 20
    window_s: float = 60.0
    max_tracked: int = 20_000


class HttpErrorEngine(Engine):
    name = "http_errors"
    settings_class = Config
    type_ids = frozenset({HTTP_CLIENT_ERROR})
    apps = frozenset({"http"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        self.errors = RateCounter(c.threshold, int(c.window_s * 1e9), c.max_tracked)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        payload = rec.payload
        # "HTTP/1.x 4xx " - the status line of a response
        if len(payload) < 13 or payload[9:10] != b"4" or not payload.startswith(b"HTTP/1."):
            return None
        status = payload[9:12]
        if not status.isdigit() or status in _CHALLENGES or payload[12:13] not in (b" ", b"\r"):
            return None
        server, client = rec.src_ip, rec.dst_ip
        if not self.errors.hit((client, server), rec.ts_ns):
            return None
        c = self.config
        return [
            self.detect(
                HTTP_CLIENT_ERROR,
                rec.ts_ns,
                f"{server} answered {c.threshold} HTTP requests from {client} with client "
                f"errors within {c.window_s:g} s (last {status.decode()})",
                source_address=client,
                destination_address=server,
                source_mac=mac_text(rec.dst_mac),
                destination_mac=mac_text(rec.src_mac),
                protocol="http",
                status=int(status),
            )
        ]
