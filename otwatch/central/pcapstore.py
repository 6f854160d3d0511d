"""Central's PCAP storage: verified pulls written under one directory, cached 48 hours.

Files are named only by their request id, which must be a lower-case UUID, so neither a
request id nor a sensor id can reach outside the directory. ``PcapStore`` is the ingest's
``PcapSink``: the assembler writes a transfer's chunks into a part file in this directory and,
once it has verified the SHA-256, the store moves that file into place and records the result
in ``pcap_requests``. Part files left by a crash are deleted by ``expire`` after a day.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from pathlib import Path

from sqlalchemy import select, update

from otwatch.central.pcap import PcapDone
from otwatch.central.store.db import CentralStore
from otwatch.central.store.models_api import PcapRequest
from otwatch.errors import OtwatchError

__all__ = ["CACHE_NS", "PcapPathError", "PcapStore", "check_request_id"]

log = logging.getLogger(__name__)

CACHE_NS = 48 * 3600 * 1_000_000_000
"""Spec section 4: a downloaded PCAP is cached 48 h."""
PART_MAX_AGE_NS = 24 * 3600 * 1_000_000_000
REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class PcapPathError(OtwatchError):
    """A request id that is not a UUID (it would not name a file of the store)."""


def check_request_id(request_id: str) -> str:
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        raise PcapPathError(f"invalid PCAP request id {str(request_id)[:80]!r}")
    return request_id


class PcapStore:
    def __init__(self, store: CentralStore, root: Path, *, cache_ns: int = CACHE_NS) -> None:
        self.db = store
        self.root = Path(root).resolve()
        self.cache_ns = cache_ns
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, request_id: str) -> Path:
        """The file of a request; raises ``PcapPathError`` for anything but a UUID."""
        path = (self.root / f"{check_request_id(request_id)}.pcap").resolve()
        if path.parent != self.root:  # pragma: no cover - the UUID check already ensures it
            raise PcapPathError(f"PCAP request id {request_id!r} leaves the PCAP directory")
        return path

    # -- PcapSink --------------------------------------------------------------------------

    def part_path(self, request_id: str) -> Path:
        """A part file of this instance for the transfer (several instances sharing the
        directory may assemble the same request at once; each writes its own part)."""
        target = self.path(request_id)
        return target.with_name(f"{target.name}.{uuid.uuid4().hex[:12]}.part")

    def store(self, done: PcapDone) -> None:
        """Move a verified part file into place and mark its request done (ingest thread)."""
        t = done.transfer
        target = self.path(t.request_id)
        fd = os.open(done.path, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename below must not outlive the data in a crash
        finally:
            os.close(fd)
        os.replace(done.path, target)
        now = time.time_ns()
        with self.db.session() as session:
            row = session.get(PcapRequest, t.request_id)
            if row is None:  # requested by an older central or a test: record it now
                row = PcapRequest(
                    request_id=t.request_id,
                    sensor=t.sensor_id,
                    alert_id=t.alert_id,
                    requested_by="central",
                    requested_ns=now,
                )
                session.add(row)
            row.state, row.reason = "done", None
            row.size, row.sha256 = done.size, done.sha256
            row.done_ns, row.expires_ns = now, now + self.cache_ns
        log.info("PCAP of alert %s-%s stored (%d bytes)", t.alert_id, t.sensor_id, done.size)

    # -- cache -----------------------------------------------------------------------------

    def expire(self, now: int | None = None) -> int:
        """Delete files past their cache time; returns how many."""
        now = time.time_ns() if now is None else now
        with self.db.session() as session:
            ids = list(
                session.scalars(
                    select(PcapRequest.request_id).where(
                        PcapRequest.state == "done", PcapRequest.expires_ns < now
                    )
                )
            )
            for request_id in ids:
                self.path(request_id).unlink(missing_ok=True)
            self._sweep_parts(now)
            if ids:
                session.execute(
                    update(PcapRequest)
                    .where(PcapRequest.request_id.in_(ids))
                    .values(state="expired", reason="cache time (48 h) passed")
                    .execution_options(synchronize_session=False)
                )
        return len(ids)

    def _sweep_parts(self, now: int) -> None:
        for part in self.root.glob("*.part"):
            try:
                if now - part.stat().st_mtime_ns > PART_MAX_AGE_NS:
                    part.unlink(missing_ok=True)
            except OSError:
                continue
