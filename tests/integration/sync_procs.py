"""The moving parts of the sync integration tests: the sensor's sync daemon as a real
``otwatch sync run`` subprocess, central as a ``CentralService`` on a thread of its own (so
tests can issue commands), and a waiting helper that fails with what it saw."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine, select

from otwatch.agent.store.models import Alert as SensorAlert
from otwatch.central.ingest import CentralSync
from otwatch.central.service import CentralService
from otwatch.central.store.db import open_central_store
from otwatch.central.store.models import Alert as CentralAlert
from otwatch.demo.parts import wait_until
from otwatch.sync.supervision import Backoff
from otwatch.sync.transport import BrokerConfig

OTWATCH = Path(sys.executable).with_name("otwatch")
COMPARED = ("status", "close_reason", "severity", "detections", "last_detection_ns", "type_id")


def spawn_logged(args: list[str], log: Path) -> tuple[subprocess.Popen, IO[str]]:
    """Start ``args`` with stdout and stderr appended to ``log``; returns the process and the
    log's open file (the caller closes it once the process is gone)."""
    fh = log.open("a")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env), fh


def terminate(proc: subprocess.Popen, timeout_s: float) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout_s``; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def serve_in_thread(owner: Any, make_service: Any, name: str) -> None:
    """Run ``make_service()`` (a ``CentralService``) on a private event loop in a daemon
    thread; sets ``owner.loop``, ``owner.stop_event``, ``owner.service`` and ``owner.thread``
    and returns once the service exists."""
    owner.loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(owner.loop)

        async def main() -> None:
            owner.stop_event = asyncio.Event()
            owner.service = make_service()
            ready.set()
            await owner.service.run(owner.stop_event)

        owner.loop.run_until_complete(main())

    owner.thread = threading.Thread(target=run, name=name, daemon=True)
    owner.thread.start()
    ready.wait(10)


def stop_service_thread(owner: Any) -> None:
    """Stop what :func:`serve_in_thread` started and close ``owner.store``."""
    if owner.thread is None:
        return
    owner.loop.call_soon_threadsafe(owner.stop_event.set)
    owner.thread.join(15)
    owner.loop.close()
    owner.store.close()
    owner.thread = None


class SensorDaemon:
    """``otwatch --data-dir D sync run`` as a subprocess."""

    def __init__(self, data_dir: Path, broker_url: str, *extra: str) -> None:
        self.data_dir = data_dir
        self.args = [str(OTWATCH), "--data-dir", str(data_dir), "sync", "run", "--broker",
                     broker_url, "--sensor-id", "s1", *extra]  # fmt: skip
        self.log = data_dir.parent / "sync.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> SensorDaemon:
        self.proc, self._fh = spawn_logged(self.args, self.log)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        code = terminate(self.proc, 15)
        self._fh.close()
        return code

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class CentralThread:
    """Central's MQTT service on a private event loop thread."""

    def __init__(self, db_url: str, broker: BrokerConfig, **engine_kwargs: Any) -> None:
        self.db_url = db_url
        self.broker = broker
        self.engine_kwargs = engine_kwargs
        self.thread: threading.Thread | None = None

    def start(self) -> CentralThread:
        self.store = open_central_store(self.db_url)
        self.engine = CentralSync(self.store, **self.engine_kwargs)
        self.stop_event: asyncio.Event | None = None
        serve_in_thread(
            self,
            lambda: CentralService(
                self.engine, self.broker, backoff=Backoff(base_s=0.1, cap_s=1.0)
            ),
            "central",
        )
        return self

    def wait_connected(self, timeout: float = 10) -> None:
        wait_until(lambda: self.service.connected.is_set(), timeout, "central to connect")

    def issue(self, sensor_id: str, command: Any, **kwargs: Any):
        """Issue a command by kind string or as a spec (``otwatch.central.commands``)."""
        if isinstance(command, str):
            coro = self.service.issue_command(sensor_id, command, **kwargs)
        else:
            coro = self.service.issue(sensor_id, command, **kwargs)
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(10)

    def stop(self) -> None:
        stop_service_thread(self)


def sensor_table(store) -> dict[int, tuple]:
    with store.session() as s:
        return {
            a.id: tuple(getattr(a, k) for k in COMPARED) for a in s.scalars(select(SensorAlert))
        }


def central_table(db_url: str, sensor_id: str = "s1") -> dict[int, tuple]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(CentralAlert.alert_id, *(getattr(CentralAlert, k) for k in COMPARED)).where(
                    CentralAlert.sensor == sensor_id
                )
            ).all()
    finally:
        engine.dispose()
    table = {r[0]: tuple(r[1:]) for r in rows}
    assert len(rows) == len(table), "duplicate alerts centrally"
    return table


def tables_equal(store, db_url: str) -> bool:
    return sensor_table(store) == central_table(db_url)


def bulk_alerts(store, first: int, count: int, ts_ns: int) -> None:
    """Insert ``count`` new alerts and their outbox rows the way the agent's flush does, in
    one transaction, without the per-detection work (the sync is under test here)."""
    import uuid as _uuid

    from sqlalchemy import insert

    from otwatch.agent.store.models import OutboxEvent

    alerts = [
        {
            "id": i, "type_id": "unpermitted_usage_of_modbus_function_code",
            "name": "Unpermitted Usage of Modbus Function Code", "engine": "policy_violation",
            "category": "Unauthorized Communication Behavior", "severity": "medium",
            "status": "new", "close_reason": None, "dedup_key": f"{i:016x}",
            "source_address": f"192.0.2.{i % 250 + 1}", "destination_address": "198.51.100.7",
            "source_mac": None, "destination_mac": None, "protocol": "modbus",
            "first_detection_ns": ts_ns + i, "last_detection_ns": ts_ns + i,
            "last_activity_ns": ts_ns + i, "detections": 1, "sensor": "s1", "site": "",
            "zone": "", "tactics": ["Impair Process Control"], "learnable": True,
            "mutable": False, "message": f"alert {i}", "remediation": ["Check it."],
            "fields": {"function_code": i % 128}, "status_hlc": 0, "severity_hlc": 0,
        }
        for i in range(first, first + count)
    ]  # fmt: skip
    outbox = [
        {"event_id": str(_uuid.uuid4()), "kind": "alert", "alert_id": a["id"],
         "created_ns": ts_ns, "payload": None}
        for a in alerts
    ]  # fmt: skip
    with store.session() as s:
        s.execute(insert(SensorAlert), alerts)
        s.execute(insert(OutboxEvent), outbox)
