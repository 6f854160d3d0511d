"""Issue 15, item 4: request bodies against a real ``otwatch central run`` (uvicorn on a
loopback port, SQLite): a body over the limit is answered 413 without being read (announced
by Content-Length, or counted as it streams in chunked), an unauthenticated request is
answered 401 before its body is read, and an unknown key in a body is a 422. Central's peak
RSS (``VmHWM``) must not grow by hundreds of MB while a 300 MB body is thrown at it."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from otwatch.demo.parts import wait_until
from tests.integration.central_procs import HOST, CentralProcess, otwatch
from tests.integration.mqtt_broker import make_broker, mosquitto  # noqa: F401
from tests.security.forge import Peer, api, birth, central_connected, event_batch, snapshot

MB = 1 << 20
HUGE = 300 * MB
GROWTH_BOUND = 100 * MB


@pytest.fixture
def central(tmp_path, mosquitto):  # noqa: F811
    db_url = f"sqlite:///{tmp_path / 'central' / 'central.db'}"
    made = otwatch("central", "token", "create", "--name", "ops", "--role", "admin",
                   "--db", db_url)  # fmt: skip
    assert made.returncode == 0, made.stderr
    proc = CentralProcess(tmp_path / "central", db_url, mosquitto.url).start()
    central_connected(proc)
    peer = Peer(mosquitto.port)
    epoch = "6d1f3c2a-8b4e-4f7a-9c1d-2e3f4a5b6c7d"
    peer.publish(*birth("s1", epoch))
    time.sleep(0.5)  # central answers the birth; the stream is known after that
    peer.publish(*event_batch("s1", epoch, [snapshot(1)]))
    peer.close()
    admin = made.stdout.strip()
    wait_until(lambda: api(proc.url, admin, "GET", "/alerts/1-s1")[0] == 200, 20, "alert")
    yield proc, admin
    proc.stop()


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _throw(port: int, head: bytes, total: int, *, chunked: bool) -> bytes:
    """Send ``head`` then up to ``total`` body bytes (as HTTP chunks when ``chunked``) while
    another thread reads the answer; stops sending when the server stops reading or closes.
    Returns what the server answered."""
    sock = socket.create_connection((HOST, port), timeout=30)
    answer = bytearray()

    def read() -> None:
        try:
            while data := sock.recv(65536):
                answer.extend(data)
        except OSError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    piece = b"x" * MB
    if chunked:
        piece = b"%x\r\n%s\r\n" % (len(piece), piece)
    sock.settimeout(5)
    try:
        sock.sendall(head)
        sent = 0
        while sent < total and not answer:
            sock.sendall(piece)
            sent += MB
        if chunked and sent >= total:
            sock.sendall(b"0\r\n\r\n")
    except OSError:  # the server answered and closed, or stopped reading: that is the point
        pass
    reader.join(30)
    sock.close()
    return bytes(answer)


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def test_huge_bodies_are_refused_unread_and_central_stays_small(central):
    proc, admin = central
    assert proc.proc is not None
    port, pid = int(proc.url.rsplit(":", 1)[1]), proc.proc.pid
    before = _peak_rss(pid)
    path = "/api/v1/alerts/status"
    cases = [
        # (headers, chunked, expected status)
        ({"Content-Length": str(HUGE)}, False, 413),  # announced: refused before anything
        ({"Transfer-Encoding": "chunked"}, True, 401),  # no token: nothing read
        ({"Transfer-Encoding": "chunked", "Authorization": "Bearer nope"}, True, 401),
        ({"Transfer-Encoding": "chunked", "Authorization": f"Bearer {admin}"}, True, 413),
        ({"Content-Length": str(2 * MB), "Authorization": f"Bearer {admin}"}, False, 413),
    ]
    for headers, chunked, expected in cases:
        answer = _throw(port, _head("POST", path, headers), HUGE, chunked=chunked)
        assert _status(answer) == expected, (headers, answer[:300])
    growth = _peak_rss(pid) - before
    assert growth < GROWTH_BOUND, f"central's peak RSS grew by {growth / MB:.0f} MiB"
    # and central still works
    code, answer = api(proc.url, admin, "POST", "/alerts/status",
                       {"ids": ["1-s1"], "status": "closed"})  # fmt: skip
    assert code == 200 and answer["results"][0]["outcome"] == "applied", answer


def test_an_unknown_key_in_a_body_is_refused(central):
    proc, admin = central
    for path, body in (
        ("/alerts/status", {"ids": ["1-s1"], "status": "closed", "extra": "x" * 1000}),
        ("/alerts/severity", {"ids": ["1-s1"], "severity": "high", "reason": "hi"}),
        ("/alerts/learn", {"ids": ["1-s1"], "force": True}),
    ):
        code, answer = api(proc.url, admin, "POST", path, body)
        assert code == 422, (path, answer)
    code, shown = api(proc.url, admin, "GET", "/alerts/1-s1")
    assert (shown["status"], shown["severity"]) == ("new", "medium")
