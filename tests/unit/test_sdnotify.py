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
