"""``otwatch central run --listen`` as a subprocess, the ``otwatch`` CLI as a subprocess, and a
sensor store with alerts and matching packets in its PCAP ring."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.capture.config import RingConfig
from otwatch.agent.capture.ring import RingWriter
from otwatch.agent.store.db import open_store
from otwatch.alerts.catalog import load_catalog
from tests.factories import T0, detection, ether_frames, modbus_request
from tests.integration.mqtt_broker import free_port
from tests.integration.sync_procs import OTWATCH

HOST = "127.0.0.1"


def otwatch(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    """Run the CLI; returns the CompletedProcess (text)."""
    return subprocess.run(
        [str(OTWATCH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


class CentralProcess:
    def __init__(self, workdir: Path, db_url: str, broker_url: str, *extra: str) -> None:
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.db_url = db_url
        self.pcap_dir = workdir / "pcap"
        self.args = [
            str(OTWATCH),
            "central",
            "run",
            "--db",
            db_url,
            "--broker",
            broker_url,
            "--listen",
            f"{HOST}:{self.port}",
            "--pcap-dir",
            str(self.pcap_dir),
            "--maintenance-interval",
            "1",
            "--log-level",
            "info",
            *extra,
        ]
        self.log = workdir / "central.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> CentralProcess:
        self._fh = self.log.open("a")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.args, stdout=self._fh, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"central exited: {self.log.read_text()}")
            try:  # the API answers (401: no token) once it is up
                urllib.request.urlopen(f"{self.url}/api/v1/whoami", timeout=1).close()
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"central API not up: {self.log.read_text()}") from None
                time.sleep(0.1)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()
        code, self.proc = self.proc.returncode, None
        return code


def sensor_with_pcaps(data_dir: Path, *, hosts_with_packets: int = 2, alerts: int = 3):
    """A sensor store (sensor id s1) with ``alerts`` alerts; the first ``hosts_with_packets``
    have Modbus packets around their detection in the PCAP ring. Returns the open store."""
    store = open_store(data_dir)
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    frames = []
    for i in range(alerts):
        src, dst = f"192.0.2.{10 + i}", f"198.51.100.{20 + i}"
        manager.observe(detection(src=src, dst=dst, ts_ns=T0 + i))
        if i < hosts_with_packets:
            packets = [modbus_request(src, dst, 5, tid=n) for n in range(50)]
            frames += ether_frames(packets, start_ns=T0 - 1_000_000_000, step_ns=20_000_000)
    manager.flush()
    writer = RingWriter(store, RingConfig(directory=data_dir / "ring"))
    writer.write_batch(sorted(frames), 1, True)
    writer.close()
    return store


class NodeThread:
    """A ``CentralNode`` + ``CentralService`` on a private event loop thread (one central
    instance of several, for shared-subscription tests)."""

    def __init__(
        self,
        db_url: str,
        broker,
        *,
        client_id: str,
        share_group: str | None,
        pcap_dir: Path | None = None,
        poll_interval_s: float = 1.0,
    ) -> None:
        self.db_url, self.broker = db_url, broker
        self.client_id, self.share_group = client_id, share_group
        self.pcap_dir, self.poll_interval_s = pcap_dir, poll_interval_s
        self.thread = None

    def start(self) -> NodeThread:
        import asyncio
        import threading

        from otwatch.central.node import CentralNode
        from otwatch.central.pcapstore import PcapStore
        from otwatch.central.service import CentralService
        from otwatch.central.store.db import open_central_store
        from otwatch.sync.supervision import Backoff

        self.store = open_central_store(self.db_url)
        self.pcaps = PcapStore(self.store, self.pcap_dir) if self.pcap_dir else None
        self.engine = CentralNode(
            self.store, pcap_sink=self.pcaps, shared=self.share_group is not None
        )
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)

            async def main() -> None:
                self.stop_event = asyncio.Event()
                self.service = CentralService(
                    self.engine,
                    self.broker,
                    client_id=self.client_id,
                    share_group=self.share_group,
                    poll_interval_s=self.poll_interval_s,
                    backoff=Backoff(base_s=0.1, cap_s=1.0),
                )
                ready.set()
                await self.service.run(self.stop_event)

            self.loop.run_until_complete(main())

        self.thread = threading.Thread(target=run, name=self.client_id, daemon=True)
        self.thread.start()
        ready.wait(10)
        return self

    def call(self, coro, timeout: float = 30):
        """Run a coroutine on the instance's loop (e.g. ``service.issue_command``)."""
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def wait_connected(self, timeout: float = 10) -> None:
        from tests.integration.sync_procs import wait_until

        wait_until(lambda: self.service.connected.is_set(), timeout, f"{self.client_id} up")

    def stop(self) -> None:
        if self.thread is None:
            return
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(15)
        self.loop.close()
        self.store.close()
        self.thread = None
