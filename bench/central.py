"""Central benchmark: one run, ratios against a baseline measured in the same run.

1. PCAP pull: a 100 MB evidence file from a sensor (``SensorSync`` + its daemon) to central
   (``CentralNode`` + ``CentralService`` + ``PcapStore``) through a private Mosquitto on
   loopback: from the API's request to the verified file on disk. Baseline: the same bytes as
   raw 128 KiB QoS 1 messages from one aiomqtt client to another on the same broker.
2. Alert queries: N alerts (default 1,000,000; bulk inserted) in SQLite and in PostgreSQL
   (127.0.0.1:5432, database ``test``, a throwaway schema), then the API's list and group-by
   queries with the portal's filters, each repeated; p50 and p95 per query. Baseline: a bare
   ``SELECT count(*)`` of the table in the same run.

    .venv/bin/python bench/central.py [--alerts N] [--pcap-mb MB] [--repeat R]
                                      [--skip-pcap] [--skip-queries] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

from otwatch.alerts.views import AlertFilter  # noqa: E402
from otwatch.central import alertviews as views  # noqa: E402
from otwatch.central.store import search_backlog  # noqa: E402
from otwatch.central.store.db import open_central_store  # noqa: E402
from otwatch.central.store.models import Alert  # noqa: E402
from otwatch.sync.transport import BrokerConfig, Connection  # noqa: E402
from tests.integration.mqtt_broker import MosquittoBroker  # noqa: E402

NS = 1_000_000_000
CHUNK = 128 << 10
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# -- 1. PCAP pull ---------------------------------------------------------------------------


def raw_transfer(broker: MosquittoBroker, data: bytes) -> float:
    """Seconds to move ``data`` as raw QoS 1 chunks between two aiomqtt clients."""
    parts = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    cfg = BrokerConfig().with_url(broker.url)

    async def run() -> float:
        async with (
            Connection(cfg, f"raw-rx-{uuid.uuid4().hex[:6]}") as rx,
            Connection(cfg, f"raw-tx-{uuid.uuid4().hex[:6]}") as tx,
        ):
            await rx.subscribe("bench/raw/#")
            got = 0

            async def receive() -> None:
                nonlocal got
                async for message in rx.messages():
                    got += len(message.payload)
                    if got >= len(data):
                        return

            receiver = asyncio.ensure_future(receive())
            start = time.perf_counter()
            await asyncio.gather(*(tx.publish(f"bench/raw/{i}", p) for i, p in enumerate(parts)))
            await asyncio.wait_for(receiver, 300)
            return time.perf_counter() - start

    return asyncio.run(run())


class _Loop:
    """An event loop on a thread running one coroutine factory until stopped."""

    def __init__(self, name: str, main) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)

            async def wrapper() -> None:
                self.stop_event = asyncio.Event()
                ready.set()
                await main(self.stop_event)

            self.loop.run_until_complete(wrapper())

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()
        ready.wait(10)

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)


def _sensor_process(data_dir: str, evidence: str, broker_url: str) -> None:
    """The sensor's sync daemon in its own process (as on a real sensor), answering PCAP
    requests with ``evidence``."""
    from otwatch.agent.sensor import SensorIdentity
    from otwatch.agent.store.db import open_store
    from otwatch.sync.daemon import run_sensor_daemon
    from otwatch.sync.sensor_sync import SensorSync

    class Provider:
        def get(self, alert_id: int) -> Path:
            return Path(evidence)

    logging.getLogger("mqtt").setLevel(logging.ERROR)
    store = open_store(Path(data_dir))
    sensor = SensorSync(store, SensorIdentity("s1"), pcap=Provider())
    cfg = BrokerConfig().with_url(broker_url)

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(15, stop.set)
        await run_sensor_daemon(sensor, cfg, stop=stop)

    asyncio.run(main())


def pcap_pull(work: Path, broker: MosquittoBroker, data: bytes) -> float:
    """Seconds from the pull request to the verified file written centrally."""
    import multiprocessing

    from otwatch.central.node import CentralNode
    from otwatch.central.pcapstore import PcapStore
    from otwatch.central.service import CentralService
    from otwatch.central.store.models_api import PcapRequest

    work.mkdir(parents=True, exist_ok=True)
    evidence = work / "evidence.pcap"
    evidence.write_bytes(data)
    sensor = multiprocessing.get_context("spawn").Process(
        target=_sensor_process, args=(str(work / "sensor"), str(evidence), broker.url)
    )
    sensor.start()
    cfg = BrokerConfig().with_url(broker.url)
    store = open_central_store(f"sqlite:///{work / 'central.db'}")
    pcaps = PcapStore(store, work / "pcap")
    node = CentralNode(store, pcap_sink=pcaps)
    service = CentralService(node, cfg, client_id="bench-central")
    central = _Loop("central", service.run)
    try:
        deadline = time.monotonic() + 60
        while not (service.connected.is_set() and node.streams.get("s1")):
            if time.monotonic() > deadline:
                raise SystemExit("sensor and central did not meet")
            time.sleep(0.05)
        time.sleep(0.5)
        request_id = str(uuid.uuid4())
        with store.session() as s:
            s.add(PcapRequest(request_id=request_id, sensor="s1", alert_id=1,
                              requested_by="bench", requested_ns=time.time_ns()))  # fmt: skip
        start = time.perf_counter()
        central.call(service.issue_command("s1", "pcap", actor="bench", alert_id=1,
                                           request_id=request_id))  # fmt: skip
        while True:
            with store.session() as s:
                if s.get(PcapRequest, request_id).state == "done":
                    break
            if time.perf_counter() - start > 600:
                raise SystemExit("PCAP pull did not finish in 600 s")
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        got = pcaps.path(request_id).read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        return elapsed
    finally:
        sensor.terminate()
        sensor.join(30)
        central.stop()
        store.close()


# -- 2. queries -----------------------------------------------------------------------------

COLUMNS = (
    "sensor", "alert_id", "type_id", "name", "engine", "category", "severity", "status",
    "close_reason", "dedup_key", "source_address", "destination_address", "source_mac",
    "destination_mac", "protocol", "first_detection_ns", "last_detection_ns",
    "last_activity_ns", "detections", "site", "zone", "tactics", "learnable", "mutable",
    "message", "remediation", "fields", "status_hlc", "status_origin", "severity_hlc",
    "severity_origin", "received_ns",
)  # fmt: skip


def alert_rows(count: int, now: int):
    """Plausible alerts: 60 sensors on 6 sites, ~200 types, 20,000 hosts, 90 days."""
    from otwatch.alerts.catalog import load_catalog

    rng = random.Random(7)
    types = list(load_catalog().values())
    statuses = ["closed"] * 6 + ["new"] * 3 + ["active"]
    per_sensor: dict[str, int] = {}
    for _ in range(count):
        sensor_n = rng.randrange(60)
        sensor = f"sensor-{sensor_n:02d}"
        per_sensor[sensor] = per_sensor.get(sensor, 0) + 1
        kind = rng.choice(types)
        first = now - rng.randrange(90 * 86400) * NS
        last = first + rng.randrange(3600) * NS
        status = rng.choice(statuses)
        src = f"10.{sensor_n}.{rng.randrange(20)}.{rng.randrange(1, 250)}"
        dst = f"10.{sensor_n}.{rng.randrange(20)}.{rng.randrange(1, 250)}"
        yield (
            sensor, per_sensor[sensor], kind.id, kind.name, kind.engine.value, kind.category,
            kind.severity.value, status, "manual" if status == "closed" else None,
            f"{rng.getrandbits(64):016x}", src, dst, None, None,
            rng.choice(("modbus", "s7comm", "dnp3", "tcp", "http", "dns")), first, last, last,
            rng.randrange(1, 500), f"site-{sensor_n % 6}", f"zone-{sensor_n % 12}", "[]",
            kind.learnable, kind.mutable, f"{kind.name}: {src} to {dst}", "[]", "{}", 0,
            "sensor", 0, "sensor", now,
        )  # fmt: skip


def _secondary_indexes(conn, dialect: str) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the alerts table's plain indexes (not the key/unique)."""
    if dialect == "postgresql":
        rows = conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'alerts' "
                "AND schemaname = current_schema() AND indexname LIKE 'ix_%'"
            )
        ).all()
    else:
        rows = conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'alerts' AND sql IS NOT NULL AND name LIKE 'ix_%'"
            )
        ).all()
    return [(r[0], r[1]) for r in rows]


def fill(url: str, count: int, now: int) -> float:
    """Bulk-load ``count`` alerts the fast way (indexes and the triggers of the derived data
    dropped, rows copied in, indexes built again, search index and counts rebuilt); returns
    seconds."""
    store = open_central_store(url)
    start = time.perf_counter()
    try:
        with store.engine.begin() as conn:
            indexes = _secondary_indexes(conn, store.dialect)
            for name, _sql in indexes:
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
            search_backlog.suspend_triggers(conn)
        if store.dialect == "postgresql":
            raw = store.engine.raw_connection()
            try:
                with raw.cursor() as cur:
                    cols = ", ".join(COLUMNS)
                    with cur.copy(f"COPY alerts ({cols}) FROM STDIN") as copy:
                        for row in alert_rows(count, now):
                            copy.write_row(row)
                raw.commit()
            finally:
                raw.close()
        else:
            marks = ", ".join("?" for _ in COLUMNS)
            sql = f"INSERT INTO alerts ({', '.join(COLUMNS)}) VALUES ({marks})"
            rows = alert_rows(count, now)
            with store.engine.begin() as conn:
                while batch := [r for _, r in zip(range(50_000), rows, strict=False)]:
                    conn.exec_driver_sql(sql, batch)
        with store.engine.begin() as conn:
            for _name, sql in indexes:
                conn.exec_driver_sql(sql)
            search_backlog.resume_triggers(conn)
        if store.dialect == "postgresql":
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE alerts")
        else:
            with store.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
    finally:
        store.close()
    return time.perf_counter() - start


def queries(now: int) -> list[tuple[str, object]]:
    day = 86400 * NS
    list_q = lambda flt, **kw: ("list", flt, kw)  # noqa: E731
    return [
        ("list newest 100", list_q(AlertFilter())),
        ("list status new+active, severity high", list_q(
            AlertFilter(statuses=("new", "active"), severities=("high",)))),
        ("list sensor-07", list_q(AlertFilter(sensors=("sensor-07",)))),
        ("list engine anomaly + site-2", list_q(
            AlertFilter(engines=("anomaly",), sites=("site-2",)))),
        ("list source 10.7.3.9", list_q(AlertFilter(source="10.7.3.9"))),
        ("list search 'modbus'", list_q(AlertFilter(search="modbus"))),
        ("list search '10.3.4.5' (rare)", list_q(AlertFilter(search="10.3.4.5"))),
        ("list search 'Modbus Function' (an alert name, ~0.5%)", list_q(
            AlertFilter(search="Modbus Function"))),
        ("list last 24 h, closed", list_q(
            AlertFilter(since_ns=now - day, statuses=("closed",)))),
        ("list sorted by severity", list_q(AlertFilter(), sort="-severity")),
        ("list page 50 (offset 5000)", list_q(AlertFilter(), offset=5000)),
        ("group by engine", ("group", AlertFilter(), {"by": "engine"})),
        ("group by name", ("group", AlertFilter(), {"by": "name"})),
        ("group by sensor", ("group", AlertFilter(), {"by": "sensor"})),
        ("group by severity", ("group", AlertFilter(), {"by": "severity"})),
        ("group by site", ("group", AlertFilter(), {"by": "site"})),
        ("group by severity, status new", ("group", AlertFilter(statuses=("new",)),
                                           {"by": "severity"})),
        ("group by sensor, last 7 days", ("group", AlertFilter(since_ns=now - 7 * day),
                                          {"by": "sensor"})),
    ]  # fmt: skip


def measure(url: str, now: int, repeat: int) -> list[tuple[str, float, float]]:
    store = open_central_store(url)
    out = []
    try:
        with store.session() as s:
            start = time.perf_counter()
            for _ in range(repeat):
                s.scalar(select(func.count()).select_from(Alert))
            out.append(("baseline: SELECT count(*)", *_stats([(time.perf_counter() - start)
                                                                / repeat])))  # fmt: skip
        for name, (kind, flt, kw) in queries(now):
            times = []
            for _ in range(repeat):
                with store.session() as s:
                    start = time.perf_counter()
                    if kind == "list":
                        views.list_alerts(s, flt, limit=100, **kw)
                    else:
                        views.group_alerts(s, flt, **kw)
                    times.append(time.perf_counter() - start)
            out.append((name, *_stats(times)))
    finally:
        store.close()
    return out


def _stats(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times) * 1000, p95 * 1000


def pg_schema_url() -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return f"{PG_ADMIN}?options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--pcap-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--skip-pcap", action="store_true")
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    logging.getLogger("mqtt").setLevel(logging.ERROR)  # aiomqtt's "pending publish calls"
    with tempfile.TemporaryDirectory(prefix="otwatch-bench-central-") as tmp:
        work = Path(tmp)
        if not args.skip_pcap:
            broker = MosquittoBroker(work / "broker")
            broker.start()
            try:
                data = os.urandom(args.pcap_mb << 20)
                raw_s = raw_transfer(broker, data)
                pull_s = pcap_pull(work / "pull", broker, data)
            finally:
                broker.stop()
            mb = len(data) / 1e6
            print(f"PCAP pull of {mb:.0f} MB through Mosquitto on loopback")
            print(f"  raw aiomqtt QoS 1 transfer (baseline): {raw_s:6.2f} s  "
                  f"{mb / raw_s:7.1f} MB/s")  # fmt: skip
            print(f"  otwatch pull (request → verified file): {pull_s:6.2f} s  "
                  f"{mb / pull_s:7.1f} MB/s  ({raw_s / pull_s:.2f}× raw)")  # fmt: skip
        if not args.skip_queries:
            now = time.time_ns()
            backends = [("sqlite", f"sqlite:///{work / 'q.db'}", None)]
            if not args.no_postgres:
                url, schema = pg_schema_url()
                backends.append(("postgresql", url, schema))
            for name, url, schema in backends:
                try:
                    seconds = fill(url, args.alerts, now)
                    print(f"\n{name}: {args.alerts:,} alerts inserted in {seconds:.1f} s "
                          f"({args.alerts / seconds:,.0f}/s)")  # fmt: skip
                    rows = measure(url, now, args.repeat)
                    base = rows[0][1]
                    print(f"  {'query':<44} {'p50 ms':>8} {'p95 ms':>8} {'p95/count(*)':>13}")
                    for query, p50, p95 in rows:
                        flag = "" if p95 <= 200 else "  > 200 ms"
                        print(f"  {query:<44} {p50:8.1f} {p95:8.1f} {p95 / base:12.2f}×{flag}")
                finally:
                    if schema:
                        drop_schema(schema)


if __name__ == "__main__":
    main()
