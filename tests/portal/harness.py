"""One real otwatch system for the portal's browser tests, and the browser that drives it.

A private Mosquitto on a free loopback port; central (``otwatch central run``) on SQLite with
its HTTP API and portal; a sensor whose agent replayed the simulated plant (``otwatch agent
replay``) and whose sync daemon (``otwatch sync run``) sends the alerts to central and applies
central's commands. Central also gets synthetic alerts of two offline sensors (enough for
paging, an XSS and CSV-injection payload). Portal users are made with ``otwatch central
user add``. Everything listens on 127.0.0.1; every process is stopped by PID at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otwatch.agent.store.models import Alert as SensorAlert
from otwatch.agent.store.readonly import open_for_reading
from otwatch.central.store.db import open_central_store
from otwatch.demo.parts import wait_until
from tests.centralapi import add_alerts, add_sensor, snapshot, token
from tests.integration.central_procs import CentralProcess, otwatch
from tests.integration.mqtt_broker import MosquittoBroker
from tests.integration.sync_procs import SensorDaemon
from tests.portalauth import user

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-sandbox",
]
VIEWPORT = {"width": 1280, "height": 800}
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SENSOR = "s1"
PLANT_ALERTS = 7
USERS = {"admin": ("alice", "correct horse battery staple"), "reader": ("rita", "reader pass 42")}

XSS = {
    "name": "<script>alert('name')</script>Injected name",
    "message": "=HYPERLINK(\"http://203.0.113.9/x\") <img src=x onerror=alert('message')>"
    "<script>alert('script')</script>",
    "source_address": "<img src=x onerror=alert(1)>",
    "destination_address": '"><svg onload=alert(2)>',
}
BULK = 60
"""Synthetic alerts of the offline sensor s-bulk: 40 two days old, 20 twenty days old."""


def _ns(seconds_ago: float) -> int:
    return time.time_ns() - int(seconds_ago * 1e9)


class Central(CentralProcess):
    """``otwatch central run``; up when its sign-in page answers (the API needs a session)."""

    def start(self, timeout: float = 30) -> Central:
        import os

        self._fh = self.log.open("a")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.args, stdout=self._fh, stderr=subprocess.STDOUT, env=env)
        wait_until(self._up, timeout, "central's portal", self.log)
        return self

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"central exited: {self.log.read_text()}")
        try:
            with urllib.request.urlopen(f"{self.url}/login", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False


@dataclass
class Plant:
    root: Path
    broker: MosquittoBroker
    central: Central
    sync: SensorDaemon
    sensor_dir: Path
    token: str
    screens: Path
    started: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.central.url

    @property
    def db_url(self) -> str:
        return self.central.db_url

    def api(self, path: str) -> Any:
        return json.loads(self.api_bytes(path))

    def api_bytes(self, path: str) -> bytes:
        request = urllib.request.Request(
            f"{self.url}/api/v1{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.read()

    def sensor_alert(self, central_id: str) -> dict[str, Any] | None:
        """The alert in the sensor's own store (what the sensor's CLI shows)."""
        alert_id = int(central_id.split("-", 1)[0])
        store = open_for_reading(self.sensor_dir)
        try:
            with store.session() as s:
                a = s.get(SensorAlert, alert_id)
                return None if a is None else {
                    "status": a.status, "severity": a.severity, "close_reason": a.close_reason
                }  # fmt: skip
        finally:
            store.close()

    def sensor_cli(self, *args: str) -> str:
        result = otwatch("--data-dir", str(self.sensor_dir), *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def plant_alert(self, type_id: str, source: str | None = None) -> dict[str, Any]:
        rows = self.api(f"/alerts?sensor={SENSOR}&type={type_id}&limit=100")["alerts"]
        rows = [r for r in rows if source is None or r["source_address"] == source]
        assert rows, f"no {type_id} alert from {source} at central"
        return rows[0]

    def stop(self) -> None:
        for part in reversed(self.started):
            part.stop()


def _central_database(db_url: str) -> str:
    """Central's database (migrated), its portal users, the synthetic alerts, and an API
    token for the tests' own API calls. Users are added with the store's own function (the
    CLI's ``central user add`` has its tests; ``otwatch demo`` uses it)."""
    store = open_central_store(db_url)
    try:
        for role, (name, password) in USERS.items():
            user(store, name, role, password)
        _synthetic_alerts(store)
        return token(store, "tests", "admin")
    finally:
        store.close()


def _replayed_sensor(
    root: Path, extra: Sequence[Path] = (), commands: Sequence[Sequence[str]] = ()
) -> Path:
    """The sensor's store after the agent replayed the simulated plant (with its PCAP ring),
    then the ``extra`` captures (after learning: their devices are new), then the sensor CLI
    ``commands`` (e.g. ``devices set``)."""
    capture = root / "plant.pcap"
    # its own process: the simulator is pure Python and would share this one's GIL
    write = (
        "import sys; from pathlib import Path; from otwatch.simulate.plant import "
        "PlantProfile, write_plant_capture as w; w(Path(sys.argv[1]), PlantProfile(learning_s=60))"
    )
    subprocess.run([sys.executable, "-c", write, str(capture)], check=True, timeout=120)
    sensor_dir = root / "sensor" / "data"
    result = otwatch("--log-level", "warning", "--data-dir", str(sensor_dir), "agent",
                     "replay", str(capture), "--ring", "--learning-period", "1m",
                     "--sensor-id", SENSOR, "--site", "plant-a", "--zone", "cell-1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    for path in extra:
        result = otwatch("--log-level", "warning", "--data-dir", str(sensor_dir), "agent",
                         "replay", str(path), "--ring", "--sensor-id", SENSOR)  # fmt: skip
        assert result.returncode == 0, result.stderr
    for command in commands:
        result = otwatch("--data-dir", str(sensor_dir), *command)
        assert result.returncode == 0, result.stderr
    return sensor_dir


def _synthetic_alerts(store) -> None:
    """Alerts of two offline sensors straight into central: 60 for paging and time ranges,
    one carrying XSS and CSV-injection payloads."""
    for sensor, site, zone in (("s-bulk", "plant-b", "hall-2"), ("s-xss", "lab", "z-9")):
        add_sensor(store, sensor, online=False, site=site, zone=zone)
    rows = []
    for i in range(1, BULK + 1):
        ago = 2 * 86400 + i * 60 if i <= 40 else 20 * 86400 + i * 60
        rows.append(snapshot(i, severity=("low", "medium", "high")[i % 3],
                             first_detection_ns=_ns(ago), last_detection_ns=_ns(ago),
                             last_activity_ns=_ns(ago), site="plant-b", zone="hall-2",
                             message=f"bulk alert {i} from the offline sensor"))  # fmt: skip
    add_alerts(store, "s-bulk", rows)
    when = _ns(3600 * 5)
    xss = snapshot(1, site="lab", zone="z-9", first_detection_ns=when,
                   last_detection_ns=when, last_activity_ns=when, **XSS)  # fmt: skip
    add_alerts(store, "s-xss", [xss])


def start_plant(
    root: Path,
    screens: Path,
    *,
    extra_captures: Sequence[Path] = (),
    sensor_commands: Sequence[Sequence[str]] = (),
) -> Plant:
    """Everything up, the slow parts side by side: the plant's capture and replay in a thread
    while the broker, central's database, its users and central itself start. The sensor
    also replays ``extra_captures`` and runs ``sensor_commands`` before its sync daemon
    starts (see ``_replayed_sensor``)."""
    broker = MosquittoBroker(root / "broker")
    broker.start()
    started: list[Any] = [broker]
    try:
        with ThreadPoolExecutor(1) as pool:
            sensor_future = pool.submit(_replayed_sensor, root, extra_captures, sensor_commands)
            db_url = f"sqlite:///{root / 'central' / 'central.db'}"
            (root / "central").mkdir(parents=True)
            api_token = _central_database(db_url)
            central = Central(root / "central", db_url, broker.url)
            central.start()
            started.append(central)
            sensor_dir = sensor_future.result()
        sync = SensorDaemon(sensor_dir, broker.url, "--status-interval", "1").start()
        started.append(sync)
        plant = Plant(root, broker, central, sync, sensor_dir, api_token, screens, started)

        def all_there() -> bool:
            assert sync.alive(), sync.log_text()
            rows = plant.api(f"/alerts?sensor={SENSOR}&limit=100")["alerts"]
            online = any(s["online"] for s in plant.api("/sensors") if s["sensor"] == SENSOR)
            return len(rows) >= PLANT_ALERTS and online

        wait_until(all_there, 60, "the sensor's alerts at central", sync.log)
        return plant
    except BaseException:
        for part in reversed(started):
            part.stop()
        raise
