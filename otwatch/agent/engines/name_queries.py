"""Suspicion of Malicious Activity (Name Queries) (malware): a host resolving many random,
non-existent names, the signature of domain-generation-algorithm malware looking for its
command server.

Counts, per client, distinct query names that the DNS server answered with NXDOMAIN *and*
whose longest label (the top-level label aside) looks machine-generated: at least
``min_label`` characters of letters and digits with character entropy of at least
``min_entropy`` bits and few vowels (below ``max_vowel_ratio``) or many digits. ``threshold``
such names within ``window_s`` (spec: 25 name queries / 1 min) raise the alert. Typos,
search-domain suffixes and browsers' three random probe names stay well below it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from otwatch.agent.decode.dns import NXDOMAIN, parse_dns, parse_dns_tcp
from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.counters import DistinctCounter
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import mac_text

__all__ = ["NameQueriesEngine", "looks_generated"]

NAME_QUERIES = "suspicion_of_malicious_activity_name_queries"
_VOWELS = frozenset("aeiouy")


@dataclass(frozen=True)
class Config:
    threshold: int = 25
    window_s: float = 60.0
    min_label: int = 8
    min_entropy: float = 2.8
    max_vowel_ratio: float = 0.3
    max_tracked: int = 20_000


def looks_generated(name: str, config: Config = Config()) -> bool:
    labels = name.lower().rstrip(".").split(".")
    candidates = labels[:-1] if len(labels) > 1 else labels
    label = max(candidates, key=len, default="")
    if len(label) < config.min_label or not label.isalnum() or not label.isascii():
        return False
    counts = Counter(label)
    size = len(label)
    entropy = -sum(n / size * math.log2(n / size) for n in counts.values())
    if entropy < config.min_entropy:
        return False
    vowels = sum(counts[v] for v in _VOWELS) / size
    digits = sum(n for ch, n in counts.items() if ch.isdigit()) / size
    return vowels < config.max_vowel_ratio or digits >= 0.25


class NameQueriesEngine(Engine):
    name = "name_queries"
    settings_class = Config
    type_ids = frozenset({NAME_QUERIES})
    apps = frozenset({"dns"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        self.names = DistinctCounter(c.threshold, int(c.window_s * 1e9), c.max_tracked)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if rec.sport != 53 or not rec.payload:
            return None
        msg = parse_dns_tcp(rec.payload) if rec.ip_proto == 6 else parse_dns(rec.payload)
        if msg is None or not msg.is_response or msg.rcode != NXDOMAIN or not msg.qname:
            return None
        if not looks_generated(msg.qname, self.config):
            return None
        client = rec.dst_ip
        if not self.names.add(client, msg.qname, rec.ts_ns):
            return None
        c = self.config
        return [
            self.detect(
                NAME_QUERIES,
                rec.ts_ns,
                f"{client} asked for {c.threshold} random-looking names that do not exist within "
                f"{c.window_s:g} s (e.g. {msg.qname}): possible domain-generation malware",
                source_address=client,
                destination_address=rec.src_ip,
                source_mac=mac_text(rec.dst_mac),
                destination_mac=mac_text(rec.src_mac),
                protocol="dns",
                example=msg.qname,
            )
        ]
