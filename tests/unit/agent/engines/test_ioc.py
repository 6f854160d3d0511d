"""IOC-list detections from packets: malicious IP (attempt, inbound probe, established),
domain and URL path."""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS, DNSQR

from otwatch.agent.engines.config import EngineSettingsError
from otwatch.agent.engines.ioc import IocEngine
from otwatch.agent.rules.ioc import IocError
from tests.factories import T0, A, B, C, EngineRun, netstore, syn, synack, tcp, udp

__all__ = ["netstore"]
ENGINES = (IocEngine,)
BAD = "203.0.113.66"


@pytest.fixture
def settings(tmp_path):
    (tmp_path / "ips.txt").write_text(f"# feed\n{BAD}\n198.51.100.128/25  # a range\n")
    (tmp_path / "domains.txt").write_text("*.evil.example\nbad.example\n")
    (tmp_path / "urls.txt").write_text("/wp-admin/shell.php\nhttp://x.example/drop/*\n")
    return {
        "ioc": {
            "ip_files": [str(tmp_path / "ips.txt")],
            "domain_files": [str(tmp_path / "domains.txt")],
            "url_files": [str(tmp_path / "urls.txt")],
        }
    }


def test_connection_attempt_probe_and_established(netstore, settings):
    run = EngineRun.with_store(netstore, ENGINES, settings=settings)
    run.feed([syn(A, BAD, 443), synack(BAD, A, 443)], start_ns=T0)
    run.feed([syn("198.51.100.200", A, 22, sport=1234)], start_ns=T0)
    assert run.types() == {
        "connection_attempt_to_known_malicious_ip": 1,
        "suspicion_of_malicious_activity": 1,
        "suspicious_traffic_detected": 1,
    }
    established = run.of("suspicion_of_malicious_activity")[0]
    assert (established.fields["source_address"], established.fields["destination_address"]) == (
        A,
        BAD,
    )


def test_domain_and_url_path(netstore, settings):
    run = EngineRun.with_store(netstore, ENGINES, settings=settings)
    run.feed(
        [
            udp(A, B, 50000, 53, bytes(DNS(qd=DNSQR(qname="c2.evil.example")))),
            udp(A, B, 50001, 53, bytes(DNS(qd=DNSQR(qname="bad.example")))),
            tcp(
                A,
                C,
                50002,
                80,
                payload=b"GET /wp-admin/shell.php?cmd=id HTTP/1.1\r\nHost: x\r\n\r\n",
            ),
            tcp(A, C, 50003, 80, payload=b"GET /drop/stage2.bin HTTP/1.1\r\nHost: x\r\n\r\n"),
        ],
        start_ns=T0,
    )
    assert run.types() == {"malicious_domain_name_request": 2, "malicious_url_path": 2}
    assert run.of("malicious_domain_name_request")[0].fields["domain"] == "c2.evil.example"


def test_clean_traffic_is_quiet(netstore, settings):
    run = EngineRun.with_store(netstore, ENGINES, settings=settings)
    run.feed(
        [
            syn(A, C, 443),
            synack(C, A, 443),
            udp(A, B, 50000, 53, bytes(DNS(qd=DNSQR(qname="evil.example")))),  # apex not listed
            udp(A, B, 50001, 53, bytes(DNS(qd=DNSQR(qname="notbad.example")))),
            tcp(A, C, 50002, 80, payload=b"GET /wp-admin/index.php HTTP/1.1\r\n\r\n"),
            tcp(A, C, 50003, 80, payload=b"GET /dropbox HTTP/1.1\r\n\r\n"),
        ],
        start_ns=T0,
    )
    assert run.types() == {}


def test_malformed_ioc_file_names_file_and_line(netstore, tmp_path):
    path = tmp_path / "ips.txt"
    path.write_text("203.0.113.1\n\nnot-an-ip\n")
    with pytest.raises(IocError, match=r"ips\.txt line 3: 'not-an-ip' is not an IP"):
        EngineRun.with_store(netstore, ENGINES, settings={"ioc": {"ip_files": [str(path)]}})
    with pytest.raises(EngineSettingsError, match="unknown key"):
        EngineRun.with_store(netstore, ENGINES, settings={"ioc": {"ip_list": [str(path)]}})


def test_no_lists_means_not_subscribed(netstore, tmp_path):
    path = tmp_path / "ips.txt"
    path.write_text("203.0.113.1\n")
    keys = [(app, events) for app in (None, "http", "dns") for events in (0, 1, 4, 128)]
    with_list = EngineRun.with_store(netstore, ENGINES, settings={"ioc": {"ip_files": [str(path)]}})
    assert all(with_list.engines[0].observe in with_list.pipeline._route(*key) for key in keys)
    run = EngineRun.with_store(netstore, ENGINES)
    ioc = run.engines[0]
    assert ioc.apps == frozenset()
    assert all(ioc.observe not in run.pipeline._route(*key) for key in keys)
