"""PCAP transfer to central: the provider hook, the chunk stream and its sender.

The capture side provides ``PcapProvider.get(alert_id)`` (the alert's evidence file, or None
when the sensor no longer has it). Until it exists, ``NoPcap`` answers "not available". A file
goes out as chunks on ``up/pcap/{request_id}``, each a ``PcapChunk`` header (index, total
count, chunk size, file size, SHA-256 of the whole file) and the chunk's raw bytes; central
re-requests the indexes it misses.

The file is streamed, never built in memory: ``PcapStream`` reads one chunk when it is about
to be published, and ``PcapSender`` (a task of the sync daemon's session) keeps at most
``window`` chunks waiting for the broker's PUBACK, so a 100 MB file costs the sensor a few
megabytes and the broker sees a steady flow. The engine hands streams over from its worker
thread (``add``); a transfer cut by a disconnect is completed by central's re-request of the
missing chunks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from otwatch.sync.protocol.messages import PCAP_CHUNK_BYTES, VERSION, encode_pcap_chunk
from otwatch.sync.protocol.outgoing import Outgoing
from otwatch.sync.protocol.topics import up_topic
from otwatch.sync.tasks import spawn

__all__ = [
    "MAX_PCAP_BYTES",
    "NoPcap",
    "PcapProvider",
    "PcapPublisher",
    "PcapSender",
    "PcapStream",
    "file_digest",
]

log = logging.getLogger(__name__)

MAX_PCAP_BYTES = 512 << 20
PCAP_WINDOW = 32
"""Chunks published and not yet acknowledged by the broker (4 MiB of 128 KiB chunks)."""


class PcapProvider(Protocol):
    def get(self, alert_id: int) -> Path | None:
        """The PCAP file for the alert, or None when it is not available."""


class PcapPublisher(Protocol):
    async def publish(self, topic: str, payload: bytes) -> None:
        """Returns once the broker acknowledged the message (``Connection.publish``)."""


class NoPcap:
    """The provider until the capture ring exists: nothing is ever available."""

    def get(self, alert_id: int) -> Path | None:
        return None


_DIGESTS: OrderedDict[tuple[str, int, int], str] = OrderedDict()
_DIGESTS_LOCK = threading.Lock()


def file_digest(path: Path) -> tuple[str, int]:
    """(SHA-256 hex, size) of a file. Remembered by path, size and modification time, so
    that central's re-requests of a few chunks do not read the whole file again."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _DIGESTS_LOCK:
        if key in _DIGESTS:
            return _DIGESTS[key], stat.st_size
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            sha.update(block)
            size += len(block)
    if size != stat.st_size:  # changed while we read it: do not remember
        return sha.hexdigest(), size
    with _DIGESTS_LOCK:
        _DIGESTS[key] = sha.hexdigest()
        while len(_DIGESTS) > 64:
            _DIGESTS.popitem(last=False)
    return sha.hexdigest(), size


@dataclass(frozen=True, slots=True)
class PcapStream:
    """One transfer: the chunks of ``path`` to publish (all, or only ``indexes``)."""

    sensor_id: str
    request_id: str
    alert_id: int
    path: Path
    size: int
    sha256: str
    indexes: tuple[int, ...] | None = None
    chunk_bytes: int = PCAP_CHUNK_BYTES

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        sensor_id: str,
        request_id: str,
        alert_id: int,
        only: Iterable[int] | None = None,
        chunk_bytes: int = PCAP_CHUNK_BYTES,
    ) -> PcapStream:
        """Digest the file (blocking: call it off the event loop); raises ``OSError``."""
        sha, size = file_digest(path)
        total = max(1, -(-size // chunk_bytes))
        indexes = None if only is None else tuple(sorted({i for i in only if 0 <= i < total}))
        return cls(sensor_id, request_id, alert_id, path, size, sha, indexes, chunk_bytes)

    @property
    def total(self) -> int:
        return max(1, -(-self.size // self.chunk_bytes))

    def messages(self) -> Iterator[Outgoing]:
        """The chunks as messages, each read from the file only when asked for."""
        topic = up_topic(self.sensor_id, "pcap", self.request_id)
        header = {
            "v": VERSION,
            "sensor_id": self.sensor_id,
            "request_id": self.request_id,
            "alert_id": self.alert_id,
            "index": 0,
            "total": self.total,
            "chunk_bytes": self.chunk_bytes,
            "size": self.size,
            "sha256": self.sha256,
        }
        wanted = self.indexes if self.indexes is not None else range(self.total)
        with self.path.open("rb", buffering=0) as fh:
            for index in wanted:
                fh.seek(index * self.chunk_bytes)
                data = fh.read(self.chunk_bytes)
                header["index"] = index
                yield Outgoing(topic, encode_pcap_chunk(header, data))


class PcapSender:
    """Transfers waiting to go out, and the task that publishes them one after another."""

    def __init__(self, window: int = PCAP_WINDOW) -> None:
        self.window = window
        self._queue: deque[PcapStream] = deque()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent = 0
        """Chunks acknowledged by the broker (all transfers)."""

    def add(self, stream: PcapStream) -> None:
        """Queue a transfer (any thread)."""
        self._queue.append(stream)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    def drain(self) -> list[PcapStream]:
        """Take every queued transfer (for callers without an event loop, e.g. tests)."""
        out = []
        while self._queue:
            out.append(self._queue.popleft())
        return out

    async def run(self, conn: PcapPublisher) -> None:
        """Publish queued transfers until cancelled; a transport error ends it (and the
        session). An unreadable file is logged and skipped: central will re-request."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        try:
            while True:
                while self._queue:
                    stream = self._queue.popleft()
                    try:
                        await self.publish(conn, stream)
                    except OSError as exc:
                        log.warning("cannot read PCAP %s: %s", stream.path, exc)
                self._wake.clear()
                if not self._queue:
                    await self._wake.wait()
        finally:
            self._loop = self._wake = None

    async def publish(self, conn: PcapPublisher, stream: PcapStream) -> None:
        """Publish one transfer's chunks with at most ``window`` awaiting PUBACK."""
        flying: set[asyncio.Task[None]] = set()
        try:
            for message in stream.messages():
                while len(flying) >= self.window:
                    done, flying = await asyncio.wait(flying, return_when=asyncio.FIRST_COMPLETED)
                    self._settle(done)
                flying.add(spawn(conn.publish(message.topic, message.payload), name="pcap-chunk"))
            while flying:
                done, flying = await asyncio.wait(flying, return_when=asyncio.FIRST_COMPLETED)
                self._settle(done)
        finally:
            for task in flying:
                task.cancel()
        log.info(
            "PCAP of alert %s sent (%d of %d chunks, %d bytes)",
            stream.alert_id,
            len(stream.indexes) if stream.indexes is not None else stream.total,
            stream.total,
            stream.size,
        )

    def _settle(self, done: set[asyncio.Task[None]]) -> None:
        for task in done:
            task.result()  # re-raise a transport error
            self.sent += 1
