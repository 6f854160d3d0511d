"""``otwatch sync run`` and ``otwatch central run`` as systemd runs them (Type=notify): a real
unix datagram socket as NOTIFY_SOCKET, a short WATCHDOG_USEC, a real Mosquitto; READY after
connecting, STATUS lines, WATCHDOG pings, STOPPING and exit 0 on SIGTERM; a bad configuration
stops them at start with the key and the fix, before they touch the database or the socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from otwatch.agent.store.readonly import open_for_reading
from otwatch.agent.store.state import get_state
from otwatch.sync.tracker import SYNC_STATE
from tests.integration.mqtt_broker import free_port, make_broker, mosquitto  # noqa: F401
from tests.integration.sync_procs import OTWATCH


class NotifySocket:
    """What systemd's end of NOTIFY_SOCKET receives, message by message."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[dict[str, str]] = []

    def wait_for(self, key: str, value: str | None = None, timeout: float = 30) -> dict[str, str]:
        """The next message carrying ``key`` (with ``value`` in it, if given)."""
        deadline = time.monotonic() + timeout
        for message in self.messages:
            if key in message and (value is None or value in message[key]):
                self.messages.remove(message)
                return message
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            message = dict(line.split("=", 1) for line in data.splitlines())
            if key in message and (value is None or value in message[key]):
                return message
            self.messages.append(message)
        raise AssertionError(f"no {key}={value or ''} within {timeout} s; saw {self.messages}")

    def drain(self) -> list[dict[str, str]]:
        self.sock.settimeout(0.01)
        while True:
            try:
                data = self.sock.recv(4096).decode()
            except (TimeoutError, BlockingIOError):
                return self.messages
            self.messages.append(dict(line.split("=", 1) for line in data.splitlines()))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.close()


def start(args: list[str], notify: NotifySocket, log: Path, **env: str) -> subprocess.Popen:
    environ = {
        **os.environ,
        "NOTIFY_SOCKET": notify.path,
        "WATCHDOG_USEC": "1000000",  # systemd's WatchdogSec=1s: ping every 0.5 s
        "OTWATCH_CONFIG": env.get("OTWATCH_CONFIG", os.devnull),
        **env,
    }
    environ.pop("WATCHDOG_PID", None)
    return subprocess.Popen(
        [str(OTWATCH), *args], stdout=log.open("w"), stderr=subprocess.STDOUT, env=environ
    )


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_sync_daemon_speaks_sd_notify(tmp_path, mosquitto, notify):  # noqa: F811
    data = tmp_path / "sensor"
    log = tmp_path / "sync.log"
    proc = start(
        ["--data-dir", str(data), "sync", "run", "--broker", mosquitto.url, "--sensor-id", "s1"],
        notify,
        log,
    )
    try:
        ready = notify.wait_for("READY")
        assert ready["READY"] == "1"
        assert f"connected to 127.0.0.1:{mosquitto.port}" in ready["STATUS"], ready
        assert "outbox 0 pending" in ready["STATUS"]
        for _ in range(3):  # fed about every 0.5 s
            notify.wait_for("WATCHDOG", "1", timeout=10)
        notify.wait_for("STATUS", "connected to", timeout=10)  # refreshed
        store = open_for_reading(data)
        with store.session() as s:
            saved = get_state(s, SYNC_STATE)
        store.close()
        assert saved["state"] == "connected" and saved["broker"] == f"127.0.0.1:{mosquitto.port}"
    finally:
        code = stop(proc)
    assert code == 0, log.read_text()
    assert notify.wait_for("STOPPING")["STOPPING"] == "1"
    store = open_for_reading(data)
    with store.session() as s:
        assert get_state(s, SYNC_STATE)["state"] == "stopped"
    store.close()
    assert "Traceback" not in log.read_text()


def test_sync_daemon_is_ready_while_the_broker_is_down(tmp_path, notify):
    """An unreachable broker: READY anyway (the unit is up and retrying), the reason in
    STATUS, and the watchdog is still fed."""
    port = free_port()
    log = tmp_path / "sync.log"
    proc = start(
        ["--data-dir", str(tmp_path / "d"), "sync", "run", "--broker", f"mqtt://127.0.0.1:{port}",
         "--sensor-id", "s1"],
        notify,
        log,
    )  # fmt: skip
    try:
        ready = notify.wait_for("READY")
        assert ready["STATUS"].startswith(f"disconnected to 127.0.0.1:{port}"), ready
        notify.wait_for("WATCHDOG", "1", timeout=10)
    finally:
        assert stop(proc) == 0, log.read_text()


def test_central_speaks_sd_notify(tmp_path, mosquitto, notify):  # noqa: F811
    log = tmp_path / "central.log"
    port = free_port()
    db = tmp_path / "central.db"
    proc = start(
        ["central", "run", "--db", f"sqlite:///{db}", "--broker", mosquitto.url, "--listen",
         f"127.0.0.1:{port}", "--pcap-dir", str(tmp_path / "pcap")],
        notify,
        log,
    )  # fmt: skip
    try:
        ready = notify.wait_for("READY")
        assert f"connected to 127.0.0.1:{mosquitto.port}" in ready["STATUS"], ready
        assert "0 sensor(s)" in ready["STATUS"]
        for _ in range(3):
            notify.wait_for("WATCHDOG", "1", timeout=10)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the API serves
    finally:
        code = stop(proc)
    assert code == 0, log.read_text()
    assert notify.wait_for("STOPPING")["STOPPING"] == "1"


BAD = '[sync]\nbroker = "mqtt:/nowhere"\n[central]\nlisten = "nowhere"\n'


@pytest.mark.parametrize("daemon", ["sync", "central"])
def test_bad_configuration_stops_the_daemon_before_it_does_anything(tmp_path, notify, daemon):
    config = tmp_path / "otwatch.toml"
    config.write_text(BAD)
    data = tmp_path / "sensor"
    central_db = tmp_path / "central.db"
    args = (
        ["--data-dir", str(data), "sync", "run"]
        if daemon == "sync"
        else ["central", "run", "--db", f"sqlite:///{central_db}"]
    )
    log = tmp_path / "out.log"
    proc = start(args, notify, log, OTWATCH_CONFIG=str(config))
    assert proc.wait(60) == 1
    out = log.read_text()
    key = "sync.broker" if daemon == "sync" else "central.listen"
    assert f"error: invalid configuration ({config})" in out and key in out and "fix:" in out
    assert "Traceback" not in out
    assert not data.exists() and not central_db.exists()  # never half-ran
    assert notify.drain() == []  # never said READY
