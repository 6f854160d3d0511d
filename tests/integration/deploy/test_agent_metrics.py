"""``otwatch agent run --metrics-port``: the live agent (in a test network namespace, traffic
only on its own veth pair) serves Prometheus metrics on the namespace's loopback; a scrape
shows the frames it captured and the alerts it raised."""

from __future__ import annotations

import subprocess
import sys
import time

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_live_capture import Agent, _run, pair, scan_and_chatter  # noqa: F401

PORT = 9464  # inside the sensor namespace: nothing else listens there


def scrape(namespace: str) -> dict[tuple[str, tuple], float]:
    code = (
        "import urllib.request;"
        f"print(urllib.request.urlopen('http://127.0.0.1:{PORT}/metrics', timeout=5).read()"
        ".decode())"
    )
    out = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", code],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(out)
        for s in family.samples
    }


def test_live_agent_serves_metrics(pair, tmp_path):  # noqa: F811
    _run("ip", "-n", pair.sen, "link", "set", "lo", "up")
    sent = tmp_path / "sent.pcap"
    count = scan_and_chatter(sent, udp_packets=100)
    agent = Agent(pair, tmp_path / "data", "--metrics-port", str(PORT))
    try:
        agent.wait_ready()
        assert scrape(pair.sen)[("otwatch_capture_up", ())] == 1
        pair.send(sent, "--topspeed")
        deadline = time.monotonic() + 30
        key = ("otwatch_capture_packets_total", (("interface", pair.sen_if),))
        while (got := scrape(pair.sen)).get(key) != count:
            assert time.monotonic() < deadline, got.get(key)
            time.sleep(0.3)
        assert got[("otwatch_capture_kernel_drops_total", (("interface", pair.sen_if),))] == 0
        while scrape(pair.sen)[("otwatch_alerts", (("status", "new"),))] < 2:  # scan + port 0
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert got[("otwatch_ring_bytes", ())] > 0
        info = [k for k in got if k[0] == "otwatch_info"]
        assert dict(info[0][1])["daemon"] == "agent"
    finally:
        code, err = agent.stop()
    assert code == 0, err
