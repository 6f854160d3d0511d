"""Run the real delivery worker in a test until a condition holds, and a plain TCP syslog
receiver (octet-counted frames) that can be stopped and started on the same port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable

from otwatch.forwarding.backend import Backend
from otwatch.forwarding.worker import Forwarder, ForwarderOptions
from otwatch.sync.tasks import spawn

FAST = ForwarderOptions(
    poll_s=0.02, reload_s=0.05, backoff_base_s=0.02, backoff_cap_s=0.1, gap_wait_s=0.3
)


def run_forwarder(
    backend: Backend,
    until: Callable[[], bool],
    *,
    options: ForwarderOptions = FAST,
    timeout: float = 20.0,
    during: Callable[[float], None] | None = None,
) -> Forwarder:
    """Run a Forwarder until ``until()`` (checked every 20 ms); ``during(elapsed)`` is called
    at each check (to bring a receiver up, say)."""

    async def main() -> Forwarder:
        stop = asyncio.Event()
        forwarder = Forwarder(backend, options)
        task = spawn(forwarder.run(stop))
        start = time.monotonic()
        try:
            while not until():
                if time.monotonic() - start > timeout:
                    raise AssertionError("condition not reached in time")
                if during is not None:
                    during(time.monotonic() - start)
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await task
        return forwarder

    return asyncio.run(main())


class TcpSyslogReceiver:
    """Accepts RFC 6587 octet-counted frames on 127.0.0.1:``port``; keeps the messages."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.messages: list[bytes] = []
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.settimeout(0.05)
        self.port = sock.getsockname()[1]
        self._sock, self._stop = sock, threading.Event()
        thread = threading.Thread(target=self._accept, args=(sock, self._stop), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self, sock: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(0.05)
            thread = threading.Thread(target=self._read, args=(conn, stop), daemon=True)
            thread.start()
        sock.close()

    def _read(self, conn: socket.socket, stop: threading.Event) -> None:
        buffer = b""
        with conn:
            while not stop.is_set():
                try:
                    chunk = conn.recv(1 << 16)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                at = 0
                while True:  # offsets, not slices of the rest: a 64 KiB chunk holds ~100
                    space = buffer.find(b" ", at, at + 12)
                    if space < 0:
                        break
                    end = space + 1 + int(buffer[at:space])
                    if end > len(buffer):
                        break
                    self.messages.append(buffer[space + 1 : end])
                    at = end
                buffer = buffer[at:]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self._threads = []
