"""Forwarding benchmark: one run, ratios against naive baselines measured in the same run.

1. Syslog over TCP (RFC 6587 octet counting, CEF bodies): ``otwatch forwarding run`` as a
   real process forwards N new alerts from a sensor store to rsyslog on loopback;
   the naive baseline formats the same alerts and opens one TCP connection per alert.
2. Webhook over HTTPS with batching (ECS JSON arrays of ``--batch`` events, HMAC-signed):
   the same daemon to a local HTTPS receiver; the naive baseline POSTs one alert per
   request on a new connection (one TLS handshake each), as a simple integration would.

The daemon's rate is measured from its first delivered event to the N-th (start-up, about
a second of imports, is printed separately). Issue 17's targets: ≥ 10,000 alerts/s to TCP
syslog and ≥ 2,000/s to a webhook with batching.

    .venv/bin/python bench/forwarding.py             # 50,000 alerts (about a minute)
    .venv/bin/python bench/forwarding.py --quick     # 10,000 alerts
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import json  # noqa: E402

from otwatch.agent.store.db import open_store  # noqa: E402
from otwatch.agent.store.forwarding import sensor_backend  # noqa: E402
from otwatch.forwarding.ecs import ecs_document  # noqa: E402
from otwatch.forwarding.formats import FORMATTERS  # noqa: E402
from otwatch.forwarding.repository import add_rule, parse_rule_spec  # noqa: E402
from otwatch.forwarding.rfc5424 import frame_octet_counted, syslog_message  # noqa: E402
from otwatch.forwarding.rules import RuleFilter  # noqa: E402
from otwatch.forwarding.source import GapGuard, RuleView, read_events  # noqa: E402
from tests.forwarding.receivers import Rsyslog, WebhookReceiver, make_ca  # noqa: E402
from tests.forwarding.samples import manager, raise_alert  # noqa: E402


class LineCounter:
    """Lines rsyslog has written to a file so far (read incrementally)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = path, 0, 0

    def count(self) -> int:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return 0
        self.offset += len(data)
        self.lines += data.count(b"\n")
        return self.lines


def build_store(data: Path, count: int):
    store = open_store(data)
    mgr = manager(store)
    for n in range(count):
        raise_alert(mgr, n)
        if n % 5000 == 4999:
            mgr.flush()
    mgr.flush()
    return store


def events(store, count: int):
    """The alerts as the daemon reads them (for the naive baselines)."""
    backend = sensor_backend(store)
    with store.session() as session:
        result = read_events(
            session,
            backend,
            RuleView(RuleFilter(), False, 0),
            (0, 0),
            "bench",
            count,
            GapGuard(),
            0,
        )
    return result.events


def daemon(data: Path):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otwatch.cli",
            "--data-dir",
            str(data),
            "--log-level",
            "error",
            "forwarding",
            "run",
            "--poll",
            "0.05",
        ],
        stdout=subprocess.DEVNULL,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_delivery(data: Path, count_fn, total: int) -> tuple[float, float, float]:
    """(start-up s, rate events/s from first to last delivered, events per CPU second the
    daemon spent meanwhile) of the real daemon. The CPU figure does not depend on how
    busy the machine is; the rate does."""
    start = time.perf_counter()
    proc = daemon(data)
    first = None
    try:
        while count_fn() < total:
            if first is None and count_fn() > 0:
                first = (time.perf_counter(), count_fn(), cpu_seconds(proc.pid))
            if time.perf_counter() - start > 600:
                raise SystemExit("daemon did not deliver everything in 10 minutes")
            time.sleep(0.002)
        end, cpu = time.perf_counter(), cpu_seconds(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert first is not None
    sent = total - first[1]
    return first[0] - start, sent / (end - first[0]), sent / max(cpu - first[2], 1e-3)


def naive_syslog(evs, port: int, landed: LineCounter) -> float:
    """One connection per alert; timed, like the daemon, until rsyslog wrote every line
    (the kernel takes a connection and its data before rsyslog gets to it)."""
    body = FORMATTERS["cef"]
    goal = landed.count() + len(evs)
    start = time.perf_counter()
    for event in evs:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(frame_octet_counted(syslog_message(event, body(event))))
    sent = time.perf_counter() - start
    while landed.count() < goal:
        if time.perf_counter() - start > 300:
            raise SystemExit("rsyslog did not write the naive baseline's lines in 5 minutes")
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    print(f"  naive syslog: {len(evs):,} connections made in {sent:.2f} s, all lines written "
          f"after {elapsed:.2f} s")  # fmt: skip
    return len(evs) / elapsed


def naive_webhook(evs, port: int, ca: str) -> float:
    context = ssl.create_default_context(cafile=ca)
    start = time.perf_counter()
    for event in evs:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context)
        body = json.dumps(ecs_document(event)).encode()
        conn.request("POST", "/hook", body=body, headers={"Content-Type": "application/json"})
        conn.getresponse().read()
        conn.close()
    return len(evs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=50_000)
    parser.add_argument("--naive", type=int, default=2_000, help="alerts per naive baseline")
    parser.add_argument("--batch", type=int, default=500, help="webhook events per request")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    total = 10_000 if args.quick else args.alerts
    print(
        f"cpus: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}; alerts: {total:,}; "
        f"naive baselines: {args.naive:,} alerts"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        ca = make_ca(tmp_path / "ca")
        rsyslog = Rsyslog(tmp_path / "rsyslog", ca)
        rsyslog.start()
        tcp = LineCounter(rsyslog.directory / "tcp.log")
        hook = WebhookReceiver(ca)
        (tmp_path / "secret").write_text("bench-secret")
        try:
            t = time.perf_counter()
            data = tmp_path / "syslog"
            store = build_store(data, 0)
            backend = sensor_backend(store)
            with store.session() as s:
                add_rule(
                    s,
                    backend,
                    parse_rule_spec(
                        {
                            "name": "tcp",
                            "targets": [
                                {
                                    "kind": "syslog",
                                    "host": "127.0.0.1",
                                    "port": rsyslog.ports["tcp"],
                                    "transport": "tcp",
                                    "format": "cef",
                                }
                            ],
                        }
                    ),
                    "bench",
                )
            store.close()
            store = build_store(data, total)
            print(f"store with {total:,} alerts built in {time.perf_counter() - t:.1f} s")
            sample = events(store, args.naive)
            store.close()

            startup, rate, per_cpu = timed_delivery(data, tcp.count, total)
            naive = naive_syslog(sample, rsyslog.ports["tcp"], tcp)
            print(
                f"syslog TCP (CEF): otwatch {rate:,.0f} alerts/s ({per_cpu:,.0f} per daemon "
                f"CPU second; start-up {startup:.1f} s); "
                f"naive one connection per alert {naive:,.0f}/s; ratio {rate / naive:.1f}x; "
                f"target 10,000/s {'met' if rate >= 10_000 else 'NOT met'}"
            )

            data = tmp_path / "webhook"
            store = build_store(data, 0)
            backend = sensor_backend(store)
            with store.session() as s:
                target = {
                    "kind": "webhook",
                    "url": hook.url,
                    "ca_file": ca.path("ca.pem"),
                    "batch": args.batch,
                    "secret_file": str(tmp_path / "secret"),
                }
                add_rule(
                    s, backend, parse_rule_spec({"name": "hook", "targets": [target]}), "bench"
                )
            store.close()
            store = build_store(data, total)
            store.close()

            startup, rate, per_cpu = timed_delivery(data, lambda: hook.count, total)
            hook.requests.clear()
            naive = naive_webhook(sample, hook.port, ca.path("ca.pem"))
            print(
                f"webhook HTTPS (batch {args.batch}, HMAC): otwatch {rate:,.0f} alerts/s "
                f"({per_cpu:,.0f} per daemon CPU second; start-up {startup:.1f} s); "
                "naive one request+connection per alert "
                f"{naive:,.0f}/s; ratio {rate / naive:.1f}x; target 2,000/s "
                f"{'met' if rate >= 2_000 else 'NOT met'}"
            )
        finally:
            rsyslog.stop()
            hook.close()
            print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
