"""Traffic matching the administrator's indicator-of-compromise lists (malware engine).

Lists come from ``ctx.settings["ioc"]`` = ``{"ip_files": [...], "domain_files": [...],
"url_files": [...]}`` (format in :mod:`otwatch.agent.rules.ioc`; a bad line fails start-up
with the file and line). With no lists configured the detector subscribes to nothing and
costs nothing.

- *Connection Attempt to Known Malicious IP*: a device tries to connect to a listed address
  (TCP SYN, first UDP datagram of a flow, ICMP echo request).
- *Suspicious Traffic Detected*: a listed address tries to connect to a device (probing in).
- *Suspicion of Malicious Activity*: a connection with a listed address was established (a
  SYN-ACK either way, or a UDP reply); once per flow.
- *Malicious Domain Name Request*: a DNS query for a listed domain.
- *Malicious URL Path*: an HTTP request for a listed path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otwatch.agent.decode.dns import parse_dns, parse_dns_tcp
from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.httpmsg import looks_like_request, parse_http
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.config import EngineSettingsError
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields, is_attempt, mac_text
from otwatch.agent.rules.ioc import load_iocs

__all__ = ["IocEngine"]

MALICIOUS_IP = "connection_attempt_to_known_malicious_ip"
SUSPICIOUS_TRAFFIC = "suspicious_traffic_detected"
MALICIOUS_ACTIVITY = "suspicion_of_malicious_activity"
MALICIOUS_DOMAIN = "malicious_domain_name_request"
MALICIOUS_URL = "malicious_url_path"
_KEYS = frozenset({"ip_files", "domain_files", "url_files"})
_CACHE_MAX = 100_000


def _ioc_files(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``ip_files``, ``domain_files`` and ``url_files`` from the engine's settings, checked."""
    unknown = sorted(set(settings) - _KEYS)
    if unknown:
        raise EngineSettingsError(
            f"settings for detector 'ioc': unknown key(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_KEYS))})"
        )
    for key, value in settings.items():
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise EngineSettingsError(f"settings for detector 'ioc': {key} must be a list")
    return dict(settings)


class IocEngine(Engine):
    name = "ioc"
    type_ids = frozenset(
        {MALICIOUS_IP, SUSPICIOUS_TRAFFIC, MALICIOUS_ACTIVITY, MALICIOUS_DOMAIN, MALICIOUS_URL}
    )
    apps: frozenset[str] | None = None

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> None:
        load_iocs(**_ioc_files(settings))  # the files exist and parse

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.iocs = load_iocs(**_ioc_files(ctx.settings.get(self.name, {})))
        self._check_ips = self.iocs.has_addresses()
        self._check_names = bool(self.iocs.domains or self.iocs.domain_patterns)
        self._check_paths = bool(self.iocs.paths or self.iocs.path_prefixes)
        self._listed: dict[str, bool] = {}
        if not self.iocs:
            self.apps = frozenset()  # nothing to look for: the pipeline never calls observe

    def _is_listed(self, address: str | None) -> bool:
        if address is None:
            return False
        hit = self._listed.get(address)
        if hit is None:
            hit = self.iocs.ip_matches(address)
            if len(self._listed) >= _CACHE_MAX:
                self._listed.clear()
            self._listed[address] = hit
        return hit

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        out: list[Detection] = []
        if self._check_ips:
            self._addresses(rec, flow, out)
        payload = rec.payload
        if payload:
            if self._check_names and rec.dport == 53:
                self._dns(rec, out)
            elif self._check_paths and flow is not None and flow.app == "http":
                self._http(rec, out)
        return out or None

    def _addresses(self, rec: PacketRecord, flow: Flow | None, out: list[Detection]) -> None:
        src, dst = rec.src_ip, rec.dst_ip
        src_bad, dst_bad = self._is_listed(src), self._is_listed(dst)
        if not src_bad and not dst_bad:
            return
        flags = rec.tcp_flags
        if is_attempt(rec, flow):
            if dst_bad:
                out.append(self._make(MALICIOUS_IP, rec, f"{src} tried to connect to {dst}, "
                                      "a known malicious address"))  # fmt: skip
            else:
                out.append(self._make(SUSPICIOUS_TRAFFIC, rec, f"known malicious address {src} "
                                      f"tried to connect to {dst}"))  # fmt: skip
            return
        answered = (flags is not None and flags & 0x12 == 0x12) or (
            rec.ip_proto == 17 and flow is not None and src == flow.server
        )
        if not answered or flow is None:
            return
        if flow.state is None:
            flow.state = {}
        if flow.state.get("ioc_reported"):
            return
        flow.state["ioc_reported"] = True
        device, bad = (dst, src) if src_bad else (src, dst)
        det = self._make(
            MALICIOUS_ACTIVITY, rec, f"{device} communicated with known malicious address {bad}"
        )
        if src_bad:  # the device is the alert's source, the listed address its destination
            fields = dict(det.fields)
            fields.update(
                source_address=device,
                destination_address=bad,
                source_mac=mac_text(rec.dst_mac),
                destination_mac=mac_text(rec.src_mac),
            )
            det = self.detect(MALICIOUS_ACTIVITY, rec.ts_ns, det.message, **fields)
        out.append(det)

    def _dns(self, rec: PacketRecord, out: list[Detection]) -> None:
        msg = parse_dns_tcp(rec.payload) if rec.ip_proto == 6 else parse_dns(rec.payload)
        if msg is None or msg.is_response or msg.qname is None:
            return
        if not self.iocs.domain_matches(msg.qname):
            return
        out.append(
            self._make(
                MALICIOUS_DOMAIN,
                rec,
                f"{rec.src_ip} asked for {msg.qname}, a known malicious domain",
                domain=msg.qname,
                protocol="dns",
            )
        )

    def _http(self, rec: PacketRecord, out: list[Detection]) -> None:
        payload = rec.payload
        if not looks_like_request(payload):
            return
        head = parse_http(payload)
        path = head.path if head is not None else None
        if not path or not self.iocs.path_matches(path):
            return
        host = head.header("host") if head is not None else None
        out.append(
            self._make(
                MALICIOUS_URL,
                rec,
                f"{rec.src_ip} requested {path} from {host or rec.dst_ip}, a known malicious "
                "URL path",
                url_path=path,
                host=host,
                protocol="http",
            )
        )

    def _make(self, type_id: str, rec: PacketRecord, message: str, **extra: object) -> Detection:
        fields = endpoint_fields(rec)
        fields.update(extra)
        return self.detect(type_id, rec.ts_ns, message, **fields)
