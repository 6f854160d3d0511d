"""sd_notify over a real unix datagram socket."""

from __future__ import annotations

import os
import socket

from otwatch.sdnotify import Notifier, watchdog_interval_s


def listener(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    return sock


def test_states_reach_the_socket(tmp_path):
    path = str(tmp_path / "notify")
    with listener(path) as sock:
        notifier = Notifier(path)
        assert notifier.enabled
        assert notifier.ready("capturing on eth1")
        assert sock.recv(4096) == b"READY=1\nSTATUS=capturing on eth1"
        notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        notifier.status("2 workers")
        assert sock.recv(4096) == b"STATUS=2 workers"
        notifier.stopping()
        assert sock.recv(4096) == b"STOPPING=1"
        notifier.close()


def test_abstract_socket_addresses(monkeypatch):
    name = f"otwatch-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert Notifier().ready()
        assert sock.recv(100) == b"READY=1"


def test_without_systemd_every_call_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled and not notifier.ready() and not notifier.watchdog()


def test_a_listener_that_stops_reading_never_blocks_us(tmp_path):
    path = str(tmp_path / "notify")
    with listener(path):
        notifier = Notifier(path)
        sent = [notifier.status("x" * 1000) for _ in range(2000)]
        assert sent[0] and not all(sent)  # the queue filled up; later sends were dropped


def test_gone_listener_is_not_an_error(tmp_path):
    path = str(tmp_path / "notify")
    listener(path).close()
    assert not Notifier(path).ready()


def test_watchdog_interval(monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    assert watchdog_interval_s() == 10.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval_s() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 10.0
    monkeypatch.setenv("WATCHDOG_USEC", "nonsense")
    assert watchdog_interval_s() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval_s() is None


def test_heartbeat_feeds_the_watchdog_only_while_the_probe_answers(tmp_path, monkeypatch):
    import asyncio

    from otwatch.sdnotify import heartbeat

    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    path = str(tmp_path / "notify")

    async def status() -> str:
        return "all good"

    def run(probe_delay: float) -> set[bytes]:
        async def probe() -> None:
            await asyncio.sleep(probe_delay)

        async def main() -> None:
            stop = asyncio.Event()
            notifier = Notifier(path)
            task = asyncio.ensure_future(heartbeat(notifier, stop, status, probe=probe))
            await asyncio.sleep(0.45)
            stop.set()
            await task
            notifier.close()

        with listener(path) as sock:
            asyncio.run(main())
            sock.setblocking(False)
            got = set()
            while True:
                try:
                    got.add(sock.recv(4096))
                except BlockingIOError:
                    (tmp_path / "notify").unlink()
                    return got

    assert {b"WATCHDOG=1", b"STATUS=all good"} <= run(0.0)
    hung = run(5.0)  # a database thread that does not answer: no ping, STATUS goes on
    assert b"WATCHDOG=1" not in hung and b"STATUS=all good" in hung
