"""Suspicion of Malicious Activity (Name Queries) from packets."""

from __future__ import annotations

import random
import string

from scapy.layers.dns import DNS, DNSQR

from otwatch.agent.engines.name_queries import NameQueriesEngine, looks_generated
from tests.factories import SEC, T0, A, B, EngineRun, netstore, udp

__all__ = ["netstore"]
ENGINES = (NameQueriesEngine,)


def nxdomain(name: str) -> object:
    return udp(B, A, 53, 50000, bytes(DNS(id=1, qr=1, rcode=3, qd=DNSQR(qname=name))))


def random_names(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    letters = string.ascii_lowercase + string.digits
    return ["".join(rng.choice(letters) for _ in range(12)) + ".com" for _ in range(n)]


def test_generated_names():
    assert looks_generated("xkqjzpwvtrmb.com")
    assert looks_generated("a8f3k2m9x1q7.net")
    assert not looks_generated("microsoft.com")
    assert not looks_generated("wpad.corp.example")
    assert not looks_generated("downloads.example.org")


def test_random_names_are_mostly_recognised():
    names = random_names(400, seed=9)
    assert sum(map(looks_generated, names)) >= 0.85 * len(names)


def test_twenty_five_random_nxdomains_in_a_minute(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    names = [n for n in random_names(40) if looks_generated(n)][:25]
    run.feed([nxdomain(n) for n in names], 2 * SEC, start_ns=T0)
    [det] = run.of("suspicion_of_malicious_activity_name_queries")
    assert det.fields["source_address"] == A


def test_typos_real_names_and_slow_lookups_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    words = ["printer", "historian", "engineering", "fileserver", "scada", "backup"]
    run.feed([nxdomain(f"{w}{i}.corp.example") for w in words for i in range(10)], start_ns=T0)
    run.feed([nxdomain(n) for n in random_names(24, seed=2)], start_ns=T0 + 10 * SEC)  # 24 < 25
    run.feed([nxdomain(n) for n in random_names(30, seed=3)], 3 * SEC, start_ns=T0 + 100 * SEC)
    ok = [
        udp(B, A, 53, 50000, bytes(DNS(qr=1, rcode=0, qd=DNSQR(qname=n))))
        for n in random_names(40, seed=4)
    ]
    run.feed(ok, start_ns=T0 + 300 * SEC)
    assert run.types() == {}
