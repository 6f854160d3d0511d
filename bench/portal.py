"""Portal benchmark: the Alerts page's data requests over N alerts (default 1,000,000).

For SQLite and PostgreSQL (127.0.0.1:5432, database ``test``) a central database with N
alerts is built once with ``bench/central.py``'s bulk load and cached (SQLite:
``bench/.cache/portal-N.db``; PostgreSQL: schema ``bench_portal_N``; ``--rebuild`` makes
them again). Each request of the Alerts page then runs ``--repeat`` times through central's
real FastAPI app in this process, signed in with a portal session cookie, and its p50/p95
server time (request in → JSON out, no network) is printed beside the baseline measured in
the same run: ``GET /api/v1/whoami`` (session check and the app's overhead, no alert query).

With ``--browser`` (and the portal's pages installed) headless Chromium also loads the
Alerts page from a real uvicorn on 127.0.0.1: time from navigation to the first grid row,
and the page weight (every response body of that navigation, uncompressed).

    .venv/bin/python bench/portal.py [--alerts N] [--repeat R] [--no-postgres] [--browser]
                                     [--rebuild]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from bench.central import PG_ADMIN, fill  # noqa: E402
from otwatch.central.api import LocalCommander, create_app  # noqa: E402
from otwatch.central.node import CentralNode  # noqa: E402
from otwatch.central.store.db import open_central_store  # noqa: E402
from otwatch.central.store.models import Alert  # noqa: E402
from otwatch.central.store.users import add_user, find_user  # noqa: E402

CACHE = REPO / "bench" / ".cache"
USER, PASSWORD = "bench-admin", "bench password 1"
TARGET_MS = 200.0
API = "/api/v1/alerts"
CHROMIUM_FLAGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-sandbox",
]

# (name, path): what the Alerts page asks for; the first four are the targets.
REQUESTS = [
    ("first page (newest 100, with total)", f"{API}?limit=100"),
    ("filtered page: new+active, high", f"{API}?status=new,active&severity=high&limit=100"),
    ("group by engine", f"{API}/groups?by=engine"),
    ("search 'modbus'", f"{API}?search=modbus&limit=100"),
    ("filtered page: last 24 h", f"{API}?since=24h&limit=100"),
    ("filtered page: sensor + protocol", f"{API}?sensor=sensor-07&protocol=dnp3&limit=100"),
    ("search '10.3.4.5' (rare)", f"{API}?search=10.3.4.5&limit=100"),
    ("group by name", f"{API}/groups?by=name"),
    ("group by protocol (not pre-counted)", f"{API}/groups?by=protocol"),
    ("group by severity, last 7 days", f"{API}/groups?by=severity&since=7d"),
    ("page 50 (offset 4900)", f"{API}?limit=100&offset=4900"),
] + [
    (f"sort by {key}", f"{API}?limit=100&sort={key}")
    for key in (
        "-severity", "name", "site", "engine", "status", "source_address",
        "destination_address", "first_detection", "last_activity", "protocol", "sensor",
        "zone", "category", "type", "detections", "tactics",
    )
]  # fmt: skip


def _count(url: str) -> int | None:
    try:
        store = open_central_store(url)
    except Exception:
        return None
    try:
        with store.session() as s:
            return s.scalar(select(func.count()).select_from(Alert))
    finally:
        store.close()


def sqlite_url(count: int, rebuild: bool) -> str:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"portal-{count}.db"
    url = f"sqlite:///{path}"
    if rebuild or not path.exists() or _count(url) != count:
        for leftover in CACHE.glob(f"portal-{count}.db*"):
            leftover.unlink()
        seconds = fill(url, count, time.time_ns())
        print(f"sqlite: {count:,} alerts bulk-loaded in {seconds:.0f} s (cached: {path})")
    return url


def postgres_url(count: int, rebuild: bool) -> str:
    schema = f"bench_portal_{count}"
    url = f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
                {"s": schema},
            )
            if exists and (rebuild or _count(url) != count):
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                exists = None
            if not exists:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        admin.dispose()
    if not exists:
        seconds = fill(url, count, time.time_ns())
        print(f"postgresql: {count:,} alerts bulk-loaded in {seconds:.0f} s (schema {schema})")
    return url


def _stats(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times) * 1000, p95 * 1000


def _app(url: str):
    store = open_central_store(url)
    with store.session() as s:
        if find_user(s, USER) is None:
            add_user(s, USER, "admin", PASSWORD)
    return store, create_app(store, LocalCommander(CentralNode(store)))


def measure(url: str, repeat: int) -> list[tuple[str, float, float]]:
    store, app = _app(url)
    try:
        client = TestClient(app)
        login = client.post("/auth/login", json={"username": USER, "password": PASSWORD})
        assert login.status_code == 200, login.text
        rows = []
        for name, path in [("baseline: GET /api/v1/whoami", "/api/v1/whoami"), *REQUESTS]:
            assert client.get(path).status_code == 200, (path, client.get(path).text)  # warm
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - start)
                assert response.status_code == 200
            rows.append((name, *_stats(times)))
        return rows
    finally:
        store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def browser(url: str, repeat: int) -> tuple[list[float], int, int]:
    """Navigation → first grid row (ms per load), page weight (bytes), requests per load."""
    import uvicorn
    from playwright.sync_api import sync_playwright

    store, app = _app(url)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_FLAGS
            )
            context = chromium.new_context(base_url=base, viewport={"width": 1280, "height": 800})
            answer = context.request.post(
                "/auth/login", data={"username": USER, "password": PASSWORD}
            )
            assert answer.status == 200, answer.text()
            page = context.new_page()
            sizes: list[int] = []
            page.on("response", lambda r: sizes.append(len(r.body())) if r.ok else None)
            page.goto("/alerts")  # warm: the server's first page, the browser's caches empty
            page.wait_for_selector("#grid tbody tr", timeout=60_000)
            times, weight, count = [], 0, 0
            for i in range(repeat):
                sizes.clear()
                start = time.perf_counter()
                page.goto(f"/alerts?r={i}", wait_until="commit")
                page.wait_for_selector("#grid tbody tr", timeout=60_000)
                times.append(time.perf_counter() - start)
                page.wait_for_load_state("networkidle")
                weight, count = max(weight, sum(sizes)), max(count, len(sizes))
            chromium.close()
        return times, weight, count
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--browser", action="store_true", help="also headless Chromium")
    parser.add_argument("--rebuild", action="store_true", help="refill the cached databases")
    args = parser.parse_args()
    backends = [("sqlite", sqlite_url)]
    if not args.no_postgres:
        backends.append(("postgresql", postgres_url))
    for name, make in backends:
        url = make(args.alerts, args.rebuild)
        rows = measure(url, args.repeat)
        base = rows[0][2]
        print(f"\n{name}, {args.alerts:,} alerts, {args.repeat} requests each (in-process ASGI)")
        print(f"  {'request':<42} {'p50 ms':>8} {'p95 ms':>8} {'p95/baseline':>13}")
        for request, p50, p95 in rows:
            flag = "" if p95 <= TARGET_MS else f"  > {TARGET_MS:.0f} ms"
            print(f"  {request:<42} {p50:8.1f} {p95:8.1f} {p95 / base:12.1f}×{flag}")
        if args.browser:
            times, weight, requests = browser(url, min(args.repeat, 10))
            p50, p95 = _stats(times)
            print(
                f"  Alerts page in Chromium, navigation → first grid row: p50 {p50:.0f} ms, "
                f"p95 {p95:.0f} ms; weight {weight / 1024:.0f} KiB in {requests} responses"
            )


if __name__ == "__main__":
    main()
