"""PCAP pulls on central: chunks written into place, missing ones spotted, file verified.

``PcapAssembler`` writes each chunk straight to its offset in a part file (no chunk is kept
in memory), hashes the file as the chunks arrive in order (the usual case) and reads back only
what came out of order, verifies size and SHA-256 once the last chunk is in, and hands the
part file to the ``PcapSink`` (the PCAP storage of the API renames it into its cache).

Re-requests: a transfer that has been silent for ``stall_ns`` is re-requested (the missing
indexes, or everything when no chunk came yet); after ``max_rerequests`` silent re-requests
in a row it is given up and listed in ``given_up`` with its reason, so that the caller marks
the request failed instead of waiting forever. The caller keeps a transfer from stalling while
its sensor is offline (an offline sensor cannot answer; see ``CentralNode``).

Restarts: a chunk that disagrees with the earlier ones on total, size or digest (one of them
was damaged or forged), or a file whose SHA-256 does not match once complete, starts the
transfer over: what was received is dropped, the disagreeing chunk is taken as the first of
the new attempt, and the next ``stalled`` asks for the whole file again at once. After
``max_restarts`` restarts the transfer is given up like a silent one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from otwatch.sync.protocol.messages import PcapChunk, ProtocolError, decode_pcap_chunk

__all__ = ["PcapAssembler", "PcapDone", "PcapError", "PcapSink", "Transfer"]

MAX_TRANSFER_BYTES = 512 << 20
NS = 1_000_000_000

log = logging.getLogger(__name__)


class PcapSink(Protocol):
    def part_path(self, request_id: str) -> Path:
        """Where the chunks of a transfer are written (next to the final file)."""

    def store(self, done: PcapDone) -> None:
        """Keep a verified PCAP file (``done.path``, which the sink may move)."""


class PcapError(ValueError):
    """A chunk that does not fit its transfer (counted and dropped by the caller)."""


@dataclass
class Transfer:
    sensor_id: str
    alert_id: int
    request_id: str
    started_ns: int
    last_chunk_ns: int
    total: int | None = None
    size: int | None = None
    sha256: str | None = None
    chunk_bytes: int | None = None
    received: bytearray = field(default_factory=bytearray)
    """One byte per index: 1 once the chunk is written."""
    count: int = 0
    rerequests: int = 0
    """Re-requests since the last chunk arrived."""
    path: Path | None = None
    fd: int | None = None
    hasher: Any = field(default_factory=hashlib.sha256)
    hashed: int = 0
    """Chunks ``0 .. hashed-1`` are in ``hasher``."""
    restarts: int = 0
    """Times the transfer started over (disagreeing chunks, a wrong digest)."""
    restart_pending: bool = False
    """Started over and not yet re-requested (``stalled`` asks for everything at once)."""

    def missing(self) -> list[int]:
        if self.total is None:
            return []
        return [i for i, got in enumerate(self.received) if not got]

    def close(self, *, delete: bool) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if delete and self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class PcapDone:
    transfer: Transfer
    path: Path
    """The verified file (a part file the sink moves into place)."""
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class GivenUp:
    transfer: Transfer
    reason: str


class PcapAssembler:
    def __init__(
        self,
        sink: PcapSink | None = None,
        *,
        stall_ns: int = 10 * NS,
        max_rerequests: int = 5,
        max_restarts: int = 3,
    ) -> None:
        self.transfers: dict[str, Transfer] = {}
        self.sink = sink
        self.stall_ns = stall_ns
        self.max_rerequests = max_rerequests
        self.max_restarts = max_restarts
        self.given_up: list[GivenUp] = []
        """Transfers abandoned by ``stalled`` and not yet taken by the caller."""
        self._spool: Path | None = None

    def _part_path(self, request_id: str) -> Path:
        part = getattr(self.sink, "part_path", None)
        if part is not None:
            return Path(part(request_id))
        if self._spool is None:
            self._spool = Path(tempfile.mkdtemp(prefix="otwatch-pcap-"))
        return self._spool / f"{request_id}.{uuid.uuid4().hex[:8]}.part"

    def expect(self, sensor_id: str, alert_id: int, request_id: str, now: int) -> None:
        """Start a transfer. One already under way is kept as it is: a re-request of the whole
        file (no chunk came yet) must not reset its count of silent re-requests."""
        if request_id not in self.transfers:
            self.transfers[request_id] = Transfer(sensor_id, alert_id, request_id, now, now)

    def cancel(self, request_id: str) -> Transfer | None:
        transfer = self.transfers.pop(request_id, None)
        if transfer is not None:
            transfer.close(delete=True)
        return transfer

    def receive(self, sensor_id: str, request_id: str, payload: bytes, now: int) -> PcapDone | None:
        """Decode and take one ``up/pcap`` message (``ProtocolError`` for a bad message,
        ``PcapError`` for one that does not fit its transfer)."""
        header, data = decode_pcap_chunk(payload)
        if header.sensor_id != sensor_id:
            raise ProtocolError(
                "wrong_sensor", f"payload sensor id {header.sensor_id!r} != topic {sensor_id!r}"
            )
        if header.request_id != request_id:
            raise ProtocolError("invalid", "request id differs from the topic's")
        return self.add(sensor_id, header, data, now)

    def add(
        self, sensor_id: str, chunk: PcapChunk, data: bytes | memoryview, now: int
    ) -> PcapDone | None:
        """Take one chunk; returns the verified file once complete. Raises ``PcapError``."""
        transfer = self.transfers.get(chunk.request_id)
        if transfer is None or transfer.sensor_id != sensor_id:
            raise PcapError(f"no PCAP request {chunk.request_id} for sensor {sensor_id}")
        self._check(transfer, chunk, len(data))
        transfer.last_chunk_ns = now
        transfer.rerequests = 0
        if transfer.received[chunk.index]:
            return None  # a duplicate (re-sent after a re-request that crossed it)
        if transfer.fd is None:
            transfer.path = self._part_path(transfer.request_id)
            transfer.path.parent.mkdir(parents=True, exist_ok=True)
            transfer.fd = os.open(transfer.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        assert transfer.chunk_bytes is not None
        os.pwrite(transfer.fd, data, chunk.index * transfer.chunk_bytes)
        transfer.received[chunk.index] = 1
        transfer.count += 1
        if chunk.index == transfer.hashed:
            transfer.hasher.update(data)
            transfer.hashed += 1
        if transfer.count < (transfer.total or 0):
            return None
        return self._finish(transfer)

    def _check(self, transfer: Transfer, chunk: PcapChunk, length: int) -> None:
        if chunk.size > MAX_TRANSFER_BYTES:
            raise PcapError(f"PCAP of {chunk.size} bytes is over the {MAX_TRANSFER_BYTES} limit")
        shape = (chunk.total, chunk.size, chunk.sha256, chunk.chunk_bytes)
        if chunk.total != max(1, -(-chunk.size // chunk.chunk_bytes)):
            raise PcapError("chunk total does not match size and chunk size")
        if transfer.total is not None and shape != (
            transfer.total, transfer.size, transfer.sha256, transfer.chunk_bytes
        ):  # fmt: skip
            self._restart(
                transfer, "a chunk disagreed with earlier chunks on total, size or digest"
            )
        if transfer.total is None:
            transfer.total, transfer.size, transfer.sha256, transfer.chunk_bytes = shape
            transfer.received = bytearray(chunk.total)
        if chunk.index >= chunk.total:
            raise PcapError(f"chunk index {chunk.index} >= total {chunk.total}")
        expected = min(chunk.chunk_bytes, chunk.size - chunk.index * chunk.chunk_bytes)
        if length != expected:
            raise PcapError(f"chunk {chunk.index} has {length} bytes, expected {expected}")

    def _finish(self, transfer: Transfer) -> PcapDone:
        """Hash what came out of order, verify, and hand over the file or start over."""
        assert transfer.fd is not None and transfer.chunk_bytes is not None
        offset = min(transfer.hashed * transfer.chunk_bytes, transfer.size or 0)
        while offset < (transfer.size or 0):
            block = os.pread(transfer.fd, 1 << 20, offset)
            if not block:
                break
            transfer.hasher.update(block)
            offset += len(block)
        digest = transfer.hasher.hexdigest()
        if offset != transfer.size or digest != transfer.sha256:
            self._restart(transfer, "the reassembled PCAP did not match its SHA-256")
            raise PcapError("reassembled PCAP does not match its SHA-256; re-requesting it")
        transfer.close(delete=False)
        del self.transfers[transfer.request_id]
        assert transfer.path is not None
        return PcapDone(transfer, transfer.path, offset, digest)

    def _restart(self, transfer: Transfer, why: str) -> None:
        """Drop what was received and start the transfer over (``PcapError`` once it has
        started over ``max_restarts`` times: then it is given up)."""
        if transfer.restarts >= self.max_restarts:
            self.transfers.pop(transfer.request_id, None)
            transfer.close(delete=True)
            reason = (
                f"{why}; the transfer from sensor {transfer.sensor_id} started over "
                f"{transfer.restarts} times and was given up; request the PCAP again"
            )
            self.given_up.append(GivenUp(transfer, reason))
            raise PcapError(reason)
        transfer.restarts += 1
        log.warning(
            "PCAP request %s: %s; starting the transfer over (%d of at most %d)",
            transfer.request_id, why, transfer.restarts, self.max_restarts,
        )  # fmt: skip
        transfer.total = transfer.size = transfer.sha256 = transfer.chunk_bytes = None
        transfer.received = bytearray()
        transfer.count, transfer.hashed, transfer.hasher = 0, 0, hashlib.sha256()
        if transfer.fd is not None:
            os.ftruncate(transfer.fd, 0)
        transfer.restart_pending = True

    def stalled(self, now: int) -> list[tuple[Transfer, list[int] | None]]:
        """Transfers quiet for the stall time, or just started over: (transfer, indexes to
        re-request; None: all).
        A transfer silent through ``max_rerequests`` re-requests is given up: removed, its
        part file deleted, and listed in ``given_up``."""
        out: list[tuple[Transfer, list[int] | None]] = []
        for request_id, transfer in list(self.transfers.items()):
            if transfer.restart_pending:  # started over: everything again, now
                transfer.restart_pending = False
                transfer.last_chunk_ns = now
                out.append((transfer, None))
                continue
            if now - transfer.last_chunk_ns < self.stall_ns:
                continue
            if transfer.rerequests >= self.max_rerequests:
                del self.transfers[request_id]
                transfer.close(delete=True)
                what = (
                    f"sent {transfer.count} of {transfer.total} chunks and then stopped"
                    if transfer.count
                    else "never sent a chunk"
                )
                self.given_up.append(
                    GivenUp(
                        transfer,
                        f"sensor {transfer.sensor_id} was online but {what}: given up after "
                        f"{transfer.rerequests} re-requests {self.stall_ns / NS:.0f} s apart "
                        "without an answer; request the PCAP again",
                    )
                )
                continue
            transfer.rerequests += 1
            transfer.last_chunk_ns = now
            out.append((transfer, transfer.missing() or None))
        return out

    def take_given_up(self) -> list[GivenUp]:
        out, self.given_up = self.given_up, []
        return out

    def close(self) -> None:
        """Drop every transfer and the private spool directory."""
        for request_id in list(self.transfers):
            self.cancel(request_id)
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None
