"""Unauthorized HTTP Activity, Unauthorized HTTP User Agent, Unauthorized HTTP SOAP Action
(policy): HTTP requests unlike those seen during learning.

From the head of each request (first segment, client to server):

- activity: the ``client>server:METHOD`` combination (baseline kind ``http_activity``);
- user agent: the ``User-Agent`` a client uses (kind ``http_user_agent``, key
  ``client|agent``);
- SOAP action: the ``SOAPAction`` header for a client/server pair (kind ``http_soap_action``).

While learning every combination seen is recorded and nothing is raised.
"""

from __future__ import annotations

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.httpmsg import looks_like_request, parse_http
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields

__all__ = ["HttpPolicyEngine"]

HTTP_ACTIVITY = "unauthorized_http_activity"
USER_AGENT = "unauthorized_http_user_agent"
SOAP_ACTION = "unauthorized_http_soap_action"
_MAX_VALUE = 200


class HttpPolicyEngine(Engine):
    name = "http_policy"
    type_ids = frozenset({HTTP_ACTIVITY, USER_AGENT, SOAP_ACTION})
    apps = frozenset({"http"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        baseline = ctx.baseline
        self._kinds = {
            HTTP_ACTIVITY: baseline.kind("http_activity"),
            USER_AGENT: baseline.kind("http_user_agent"),
            SOAP_ACTION: baseline.kind("http_soap_action"),
        }

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        payload = rec.payload
        if not payload or not looks_like_request(payload):
            return None
        head = parse_http(payload)
        if head is None or not head.is_request:
            return None
        client, server = rec.src_ip, rec.dst_ip
        agent = (head.header("user-agent") or "")[:_MAX_VALUE]
        soap = (head.header("soapaction") or "").strip('"')[:_MAX_VALUE]
        checks = [(HTTP_ACTIVITY, f"{client}>{server}:{head.method}", {"method": head.method})]
        if agent:
            checks.append((USER_AGENT, f"{client}|{agent}", {"user_agent": agent}))
        if soap:
            checks.append((SOAP_ACTION, f"{client}>{server}|{soap}", {"soap_action": soap}))
        out = None
        learning = self.ctx.learning.active
        for type_id, key, params in checks:
            if key in self._kinds[type_id]:
                continue
            if learning:
                self.ctx.baseline.add(_KIND[type_id], key, rec.ts_ns)
                continue
            out = out or []
            out.append(
                self.detect(
                    type_id,
                    rec.ts_ns,
                    _message(type_id, client, server, head.method, head.path, params),
                    **endpoint_fields(rec, "http"),
                    url_path=(head.path or "")[:_MAX_VALUE],
                    **params,
                )
            )
        return out


_KIND = {
    HTTP_ACTIVITY: "http_activity",
    USER_AGENT: "http_user_agent",
    SOAP_ACTION: "http_soap_action",
}


def _message(
    type_id: str,
    client: str | None,
    server: str | None,
    method: str | None,
    path: str | None,
    params: dict[str, str | None],
) -> str:
    if type_id == HTTP_ACTIVITY:
        return (
            f"{client} sent HTTP {method} {path} to {server}; this client/server/method "
            "combination was not seen during learning"
        )
    if type_id == USER_AGENT:
        return f"{client} used an HTTP user agent not seen during learning: {params['user_agent']}"
    return (
        f"{client} called SOAP action {params['soap_action']} on {server}, not seen during learning"
    )
