"""Sync benchmark: one run, ratios against a baseline measured in the same run.

1. Throughput: N alert events (default 100,000) from a sensor store to the central database
   through a private Mosquitto on loopback, with ``otwatch sync run`` and
   ``otwatch central run`` as real processes; compared with a naive publisher that sends one
   QoS 1 message per event and waits for each PUBACK (aiomqtt), measured on the same broker.
2. Latency: a central status change → applied on the sensor → its acknowledgement recorded
   centrally, over 1,000 changes one after the other (p50, p99).
3. Recovery: the broker goes away for a while (60 s), 10,000 events pile up on the sensor; the
   time from the broker's return until central has them all.

It also prints the CPU time each process spent per 1,000 events of the throughput run after
start-up (sync daemon, central, broker), to show which end limits the rate.

    .venv/bin/python bench/sync.py                 # the issue's figures (about 3 minutes)
    .venv/bin/python bench/sync.py --quick         # 20,000 events, 200 changes, 5 s outage
    .venv/bin/python bench/sync.py [--events N] [--changes N] [--backlog N] [--outage-s S]
    .venv/bin/python bench/sync.py --forwarding [--events N] [--rounds 2]
                                   # ingest without / with two forwarding rules on central
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, text  # noqa: E402

from otwatch.agent.store.db import open_store  # noqa: E402
from otwatch.sync.transport import BrokerConfig, Connection  # noqa: E402
from tests.integration.mqtt_broker import MosquittoBroker, free_port  # noqa: E402
from tests.integration.sync_procs import (  # noqa: E402
    OTWATCH,
    CentralThread,
    bulk_alerts,
)

T0 = 1_790_000_000 * 1_000_000_000


def central_hw(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT events_hw FROM sensors WHERE id='s1'")).scalar() or 0
            )
    except Exception:
        return 0
    finally:
        engine.dispose()


def wait_hw(db_url: str, target: int, timeout: float) -> float:
    start = time.perf_counter()
    while central_hw(db_url) < target:
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"timed out: central has {central_hw(db_url)} of {target} events")
        time.sleep(0.05)
    return time.perf_counter()


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("a"), stderr=subprocess.STDOUT)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def naive_rate(broker: MosquittoBroker, sample: list[bytes]) -> float:
    """One message per event, QoS 1, each publish awaited: what a simple sync would do."""

    async def run() -> float:
        async with Connection(BrokerConfig().with_url(broker.url), "bench-naive") as conn:
            start = time.perf_counter()
            for payload in sample:
                await conn.publish("otwatch/v1/naive/up/events", payload)
            return len(sample) / (time.perf_counter() - start)

    return asyncio.run(run())


def sample_events(data_dir: Path, count: int) -> list[bytes]:
    from otwatch.agent.sensor import SensorIdentity
    from otwatch.sync.protocol.streams import StreamLimits
    from otwatch.sync.sensor_sync import SensorSync

    store = open_store(data_dir)
    engine = SensorSync(store, SensorIdentity("s1"), limits=StreamLimits(batch_rows=count))
    engine.on_connect(time.time_ns())
    events = []
    for message in engine.poll(time.time_ns()):
        events.extend(json.loads(message.payload)["events"])
    store.close()
    return [json.dumps(e, separators=(",", ":")).encode() for e in events[:count]]


def without_derived(db_url: str) -> None:
    """Create central's database with its search/count triggers dropped (what ingest costs
    without them; ``otwatch.central.store.derived``)."""
    from otwatch.central.store import search_backlog
    from otwatch.central.store.db import open_central_store

    store = open_central_store(db_url)
    with store.engine.begin() as conn:
        search_backlog.suspend_triggers(conn)
    store.close()


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


class ForwardingRules:
    """Two forwarding rules on central (``--forwarding``): CEF over TCP syslog to a real
    rsyslog on loopback, and ECS JSON lines to a file; counts what each received."""

    def __init__(self, work: Path) -> None:
        from tests.forwarding.receivers import Rsyslog, make_ca

        self.rsyslog = Rsyslog(work / "rsyslog", make_ca(work / "ca"))
        self.rsyslog.start()
        self.syslog_log = self.rsyslog.directory / "tcp.log"
        self.ecs_file: Path | None = None
        self.syslog_start = 0

    def add(self, db_url: str, work: Path) -> None:
        from otwatch.central.store.db import open_central_store
        from otwatch.central.store.forwarding import central_backend
        from otwatch.forwarding.repository import add_rule, parse_rule_spec

        self.ecs_file = work / "alerts.ndjson"
        self.syslog_start = count_lines(self.syslog_log)
        syslog = {"kind": "syslog", "host": "127.0.0.1", "port": self.rsyslog.ports["tcp"],
                  "transport": "tcp", "format": "cef"}  # fmt: skip
        store = open_central_store(db_url)
        backend = central_backend(store)
        try:
            for name, target in (
                ("siem-cef", syslog),
                ("elastic-ecs", {"kind": "file", "path": str(self.ecs_file)}),
            ):
                with store.session() as session:
                    spec = parse_rule_spec({"name": name, "targets": [target]})
                    add_rule(session, backend, spec, "bench")
        finally:
            store.close()

    def delivered(self) -> tuple[int, int]:
        """(syslog, file) events received since ``add``."""
        assert self.ecs_file is not None
        return count_lines(self.syslog_log) - self.syslog_start, count_lines(self.ecs_file)

    def stop(self) -> None:
        self.rsyslog.stop()


def throughput(
    work: Path,
    broker: MosquittoBroker,
    events: int,
    *,
    derived: bool = True,
    tag: str = "",
    rules: ForwardingRules | None = None,
) -> dict[str, float]:
    work = work if derived else work / "no-derived"
    work = work / tag if tag else work
    data = work / "throughput" / "sensor"
    store = open_store(data)
    for first in range(1, events + 1, 20_000):
        bulk_alerts(store, first, min(20_000, events - first + 1), T0)
    store.close()
    sample_store = open_store(work / "naive-sample")
    bulk_alerts(sample_store, 1, 5_000, T0)
    sample_store.close()
    naive = naive_rate(broker, sample_events(work / "naive-sample", 5_000))
    db_url = f"sqlite:///{work / 'throughput' / 'central.db'}"
    if not derived:
        without_derived(db_url)
    if rules is not None:
        rules.add(db_url, work)
    log = work / "throughput.log"
    central_log = work / "central.log"
    central = spawn([str(OTWATCH), "central", "run", "--db", db_url, "--broker", broker.url,
                     "--listen", f"127.0.0.1:{free_port()}", "--log-level", "info"],
                    central_log)  # fmt: skip
    deadline = time.monotonic() + 60
    while "otwatch.central.service: connected to" not in central_log.read_text(errors="replace"):
        if time.monotonic() > deadline or central.poll() is not None:
            raise SystemExit(f"central did not connect; see {central_log}")
        time.sleep(0.05)
    # central's forwarding child (with or without rules) is up before the clock starts
    while "forwarding from the central store" not in central_log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    start = time.perf_counter()
    daemon = spawn([str(OTWATCH), "--data-dir", str(data), "sync", "run", "--broker", broker.url,
                    "--sensor-id", "s1", "--log-level", "warning"], log)  # fmt: skip
    first_t = first_hw = None
    while (hw := central_hw(db_url)) < events:
        if first_t is None and hw > 0:
            first_t, first_hw = time.perf_counter(), hw
            procs = {"sensor": daemon.pid, "central": central.pid, "broker": broker.proc.pid}
            cpu_start = {name: cpu_s(pid) for name, pid in procs.items()}
        if time.perf_counter() - start > max(120, events / 200):
            raise SystemExit(f"timed out: central has {hw} of {events} events")
        time.sleep(0.05)
    end = time.perf_counter()
    per_k = 1000 / max(events - (first_hw or 0), 1) * 1000  # CPU ms per 1,000 events
    cpu = {name: (cpu_s(pid) - cpu_start[name]) * per_k for name, pid in procs.items()}
    forwarded: dict[str, Any] = {}
    if rules is not None:
        forwarded["at_ingest_end"] = rules.delivered()
        while min(rules.delivered()) < events and time.perf_counter() - end < 120:
            time.sleep(0.1)
        forwarded["all_s"] = time.perf_counter() - end
        forwarded["final"] = rules.delivered()
    for proc in (daemon, central):
        proc.terminate()
        proc.wait(20)
    steady = (events - (first_hw or 0)) / max(end - (first_t or start), 1e-9)
    return {"ours": events / (end - start), "steady": steady, "naive": naive,
            "startup_s": (first_t or start) - start, "cpu": cpu,
            "forwarded": forwarded}  # fmt: skip


def forwarding_comparison(work: Path, broker: MosquittoBroker, events: int, rounds: int) -> None:
    """Ingest without and with two forwarding rules on central, alternating in this run."""
    rules = ForwardingRules(work / "forwarding")
    runs: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    try:
        for index in range(rounds):
            for mode in ("without", "with"):
                result = throughput(
                    work,
                    broker,
                    events,
                    tag=f"fwd-{mode}-{index}",
                    rules=rules if mode == "with" else None,
                )
                runs[mode].append(result)
                extra = ""
                if mode == "with":
                    fwd = result["forwarded"]
                    extra = (
                        f"; forwarded when ingest ended (syslog, file) {fwd['at_ingest_end']}, "
                        f"all {fwd['final']} {fwd['all_s']:.1f} s later"
                    )
                print(
                    f"  round {index + 1} {mode:7} rules: {result['ours']:8,.0f} events/s "
                    f"(after start-up {result['steady']:,.0f}); central CPU "
                    f"{result['cpu']['central']:.0f} ms per 1,000 events{extra}",
                    flush=True,
                )
    finally:
        rules.stop()
    without = statistics.median(r["ours"] for r in runs["without"])
    with_rules = statistics.median(r["ours"] for r in runs["with"])
    print(
        f"ingest with two forwarding rules active: median {with_rules:,.0f} events/s vs "
        f"{without:,.0f} without; ratio {with_rules / without:.2f} (target ≥ 0.90: "
        f"{'met' if with_rules >= 0.9 * without else 'NOT met'}); load average "
        f"{os.getloadavg()[0]:.1f}"
    )


def latency_and_recovery(
    work: Path, broker: MosquittoBroker, changes: int, outage_s: float, backlog: int
) -> dict[str, float]:
    data = work / "latency" / "sensor"
    store = open_store(data)
    bulk_alerts(store, 1, 200, T0)
    db_url = f"sqlite:///{work / 'latency' / 'central.db'}"
    central = CentralThread(db_url, BrokerConfig().with_url(broker.url)).start()
    central.wait_connected()
    log = work / "latency.log"
    daemon = spawn([str(OTWATCH), "--data-dir", str(data), "sync", "run", "--broker", broker.url,
                    "--sensor-id", "s1", "--log-level", "warning"], log)  # fmt: skip
    wait_hw(db_url, 200, 60)

    acked: dict[str, float] = {}
    done = threading.Condition()
    original = central.engine._on_acks

    def on_acks(sensor_id, payload, now, topic):
        out = original(sensor_id, payload, now, topic)
        stamp = time.perf_counter()
        with done:
            for ack in json.loads(payload)["acks"]:
                acked[ack["command_id"]] = stamp
            done.notify_all()
        return out

    central.engine._on_acks = on_acks
    samples = []
    for i in range(changes):
        alert_id = i % 200 + 1
        value = "active" if (i // 200) % 2 == 0 else "new"  # always a change
        start = time.perf_counter()
        result = central.issue("s1", "status", alert_id=alert_id, value=value, actor="bench")
        if result.command_id is None:
            continue
        with done:
            done.wait_for(lambda cid=result.command_id: cid in acked, timeout=10)
        samples.append(acked.get(result.command_id, start + 10) - start)
    samples.sort()
    p50 = statistics.median(samples) * 1000
    p99 = samples[int(len(samples) * 0.99) - 1] * 1000

    # Recovery: broker down, a backlog piles up, broker back.
    hw = central_hw(db_url)
    broker.stop()
    bulk_alerts(store, 1000, backlog, T0)
    time.sleep(outage_s)
    broker.start()
    back = time.perf_counter()
    end = wait_hw(db_url, hw + backlog, timeout=300)
    daemon.terminate()
    daemon.wait(20)
    central.stop()
    store.close()
    return {"p50_ms": p50, "p99_ms": p99, "n": len(samples), "recovery_s": end - back}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=None, help="default 100,000")
    parser.add_argument("--changes", type=int, default=None, help="default 1,000")
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--outage-s", type=float, default=None, help="default 60")
    parser.add_argument(
        "--quick", action="store_true", help="for iterating: 20,000 events, 200 changes, 5 s outage"
    )
    parser.add_argument(
        "--forwarding",
        action="store_true",
        help="only the throughput, without and with two forwarding rules active on central "
        "(TCP syslog CEF to rsyslog, ECS file), alternating --rounds times; prints the ratio",
    )
    parser.add_argument("--rounds", type=int, default=2, help="with --forwarding")
    parser.add_argument(
        "--compare-derived",
        action="store_true",
        help="also run the throughput with central's search/count triggers dropped",
    )
    args = parser.parse_args()
    quick = {"events": 20_000, "changes": 200, "outage_s": 5.0}
    full = {"events": 100_000, "changes": 1_000, "outage_s": 60.0}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    outage = args.outage_s
    with tempfile.TemporaryDirectory(prefix="otwatch-bench-sync-") as tmp:
        work = Path(tmp)
        broker = MosquittoBroker(work / "broker")
        broker.start()
        if args.forwarding:
            print(f"ingest of {args.events:,} events, without and with forwarding rules:")
            try:
                forwarding_comparison(work, broker, args.events, args.rounds)
            finally:
                broker.stop()
            return
        try:
            t = throughput(work, broker, args.events)
            bare = (
                throughput(work, broker, args.events, derived=False)
                if args.compare_derived
                else None
            )
            lat = latency_and_recovery(work, broker, args.changes, outage, args.backlog)
        finally:
            broker.stop()
    print(f"throughput: {args.events:,} events sensor store → central DB through Mosquitto")
    print(
        f"  otwatch sync      {t['ours']:10,.0f} events/s   (target ≥ 10,000; includes the "
        f"daemon's {t['startup_s']:.1f} s start-up)"
    )
    print(f"  after start-up    {t['steady']:10,.0f} events/s")
    print(f"  naive QoS 1/event {t['naive']:10,.0f} events/s   (publish only, no database)")
    print(f"  ratio             {t['ours'] / t['naive']:10.1f} x   "
          f"(after start-up {t['steady'] / t['naive']:.1f} x)")  # fmt: skip
    cpu = t["cpu"]
    print(f"  CPU per 1,000 events after start-up: sync daemon {cpu['sensor']:.0f} ms, "
          f"central {cpu['central']:.0f} ms, broker {cpu['broker']:.0f} ms")  # fmt: skip
    if bare is not None:
        print(f"  without central's search/count triggers: {bare['ours']:,.0f} events/s "
              f"(after start-up {bare['steady']:,.0f}; ratio {bare['ours'] / t['naive']:.1f} x), "
              f"central CPU {bare['cpu']['central']:.0f} ms per 1,000 events")  # fmt: skip
    print(f"latency central change → sensor applied → ack recorded ({lat['n']:,} changes)")
    print(
        f"  p50 {lat['p50_ms']:7.1f} ms (target ≤ 50)   p99 {lat['p99_ms']:7.1f} ms (target ≤ 250)"
    )
    print(f"recovery after a {outage:.0f} s broker outage with {args.backlog:,} events queued: "
          f"{lat['recovery_s']:.2f} s from the broker's return")  # fmt: skip


if __name__ == "__main__":
    main()
