"""systemd notifications (``sd_notify``) over the unix datagram socket in ``NOTIFY_SOCKET``.

No dependency: a datagram with ``READY=1``, ``WATCHDOG=1``, ``STATUS=…`` or ``STOPPING=1``
is all the protocol needs. Without ``NOTIFY_SOCKET`` (not started by systemd with
``Type=notify``) every call is a cheap no-op. :func:`heartbeat` is the asyncio loop the sync
and central daemons share: WATCHDOG at half ``WatchdogSec`` while a probe of their database
thread answers, and a refreshed STATUS line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable

__all__ = ["Notifier", "heartbeat", "watchdog_interval_s"]

log = logging.getLogger(__name__)
STATUS_INTERVAL_S = 10.0


def watchdog_interval_s() -> float | None:
    """Half the watchdog timeout systemd set for this process (``WATCHDOG_USEC``), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


class Notifier:
    """Sends state lines to systemd; errors are swallowed (notification is best effort) and a
    send never blocks."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace
        self.address = address or None
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)  # a listener that stops reading must not stall us

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *lines: str) -> bool:
        if self._sock is None or self.address is None or not lines:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def heartbeat(
    notifier: Notifier,
    stop: asyncio.Event,
    status: Callable[[], Awaitable[str]],
    *,
    probe: Callable[[], Awaitable[object]] | None = None,
    status_interval_s: float = STATUS_INTERVAL_S,
) -> None:
    """Until ``stop``: ``WATCHDOG=1`` every half ``WatchdogSec`` (only while ``probe`` answers
    within that time, so a hung database thread gets the service restarted), and
    ``STATUS=<status()>`` every ``status_interval_s``. Returns at once without systemd."""
    if not notifier.enabled:
        return
    watchdog = watchdog_interval_s()
    if watchdog:  # the STATUS line is refreshed at least as often as the watchdog is fed
        status_interval_s = min(status_interval_s, watchdog)
    tick = status_interval_s
    next_status = next_watchdog = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if watchdog and now >= next_watchdog:
            try:
                if probe is not None:
                    await asyncio.wait_for(probe(), timeout=watchdog)
                notifier.watchdog()
            except TimeoutError:
                log.error("no watchdog ping: database thread silent for %.0f s", watchdog)
            next_watchdog = now + watchdog
        if now >= next_status:
            try:
                notifier.status(await status())
            except Exception as exc:  # a status line must never stop the daemon
                log.warning("status line failed: %r", exc)
            next_status = now + status_interval_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=tick)
