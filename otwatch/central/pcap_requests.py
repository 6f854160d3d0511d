"""PCAP requests as the API sees them: reuse a recent one, open a new one, report its state.

A request row (``pcap_requests``) is written before the command goes out and completed with
its command id (or failure) after; ``CentralNode`` updates it as chunks arrive and the file
is verified. ``view`` tells an operator where a request stands: pending (sensor offline,
not answering yet, or sending), done, not_available, failed or expired (file gone).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from otwatch.central import alertviews as views
from otwatch.central.pcapstore import PcapStore
from otwatch.central.store import alerts as alert_store
from otwatch.central.store.db import CentralStore
from otwatch.central.store.models import Command, Sensor
from otwatch.central.store.models_api import PcapRequest
from otwatch.timeutil import format_iso

__all__ = ["PcapRequests", "Progress"]

Progress = Callable[[str], tuple[int, int | None] | None]
"""``progress(request_id)``: chunks received and total of a transfer under way, else None."""

PENDING_REUSE_NS = 3600 * 1_000_000_000
"""A pending request younger than this is reused instead of asking the sensor again."""
STALLED_NS = 10 * 60 * 1_000_000_000
"""A transfer without progress for this long is reported as stalled."""


class PcapRequests:
    def __init__(
        self,
        store: CentralStore,
        pcaps: PcapStore | None,
        progress: Progress | None = None,
        *,
        file_url: str = "/pcap/{}/file",
    ) -> None:
        """``file_url.format(request_id)`` is where a finished request's file downloads."""
        self.store = store
        self.pcaps = pcaps
        self.progress: Progress = progress or (lambda _rid: None)
        self.file_url = file_url

    def view(self, session: Session, row: PcapRequest) -> dict[str, Any]:
        """The request as the API reports it, with a message an operator reads."""
        now = time.time_ns()
        sensor = session.get(Sensor, row.sensor)
        online = bool(sensor and sensor.online)
        command = session.get(Command, row.command_id) if row.command_id else None
        state, message = row.state, row.reason or ""
        got = self.progress(row.request_id)
        if state == "done":
            path = self.pcaps.path(row.request_id) if self.pcaps is not None else None
            if path is None or not path.exists():
                state, message = "expired", "the cached file is gone; request it again"
            else:
                message = f"PCAP ready ({row.size} bytes, SHA-256 {row.sha256})"
        elif state == "pending":
            if not online:
                message = (
                    f"sensor {row.sensor} is offline: the request stays pending and "
                    "completes when the sensor returns"
                )
            elif command is not None and command.status == "applied":
                message = f"sensor {row.sensor} is sending the PCAP"
                if got is not None:
                    message += f" ({got[0]}/{got[1] or '?'} chunks)"
                if now - row.requested_ns > STALLED_NS:
                    message += "; no progress for a long time, request it again if it stays so"
            else:
                message = f"waiting for sensor {row.sensor} to answer"
        elif state == "not_available":
            message = f"the sensor no longer has the PCAP: {row.reason}"
        return {
            "request_id": row.request_id,
            "id": f"{row.alert_id}-{row.sensor}",
            "sensor": row.sensor,
            "alert_id": row.alert_id,
            "state": state,
            "message": message,
            "reason": row.reason,
            "sensor_online": online,
            "requested_by": row.requested_by,
            "requested": format_iso(row.requested_ns),
            "done": format_iso(row.done_ns),
            "expires": format_iso(row.expires_ns),
            "size": row.size,
            "sha256": row.sha256,
            "chunks_received": got[0] if got else None,
            "chunks_total": got[1] if got else None,
            "bytes": row.size if state == "done" else None,
            "download": self.file_url.format(row.request_id) if state == "done" else None,
        }

    def reusable(self, alert_text: str) -> tuple[dict[str, Any] | None, tuple[str, int]] | None:
        """For a central alert id: a request to reuse (a file cached and not expired, or one
        pending for less than an hour) or None, and the (sensor, alert id) to ask; None when
        the alert does not exist."""
        now = time.time_ns()
        with self.store.session() as s:
            # the alert this id names, not its unified primary: the PCAP is evidence held by
            # the sensor that raised it, and another sensor of the zone must not answer for it
            alert_id, sensor = views.parse_central_id(alert_text)
            alert = alert_store.get_alert(s, sensor, alert_id)
            if alert is None:
                return None
            key = (alert.sensor, alert.alert_id)
            rows = s.scalars(
                select(PcapRequest)
                .where(PcapRequest.sensor == key[0], PcapRequest.alert_id == key[1])
                .order_by(PcapRequest.requested_ns.desc())
                .limit(5)
            )
            for row in rows:
                view = self.view(s, row)
                if view["state"] == "done" and (row.expires_ns or 0) > now:
                    return view, key
                if view["state"] == "pending" and now - row.requested_ns < PENDING_REUSE_NS:
                    return view, key
            return None, key

    def open(self, key: tuple[str, int], actor: str) -> str:
        """Record a new pending request; returns its id."""
        request_id = str(uuid.uuid4())
        with self.store.session() as s:
            s.add(
                PcapRequest(
                    request_id=request_id,
                    sensor=key[0],
                    alert_id=key[1],
                    requested_by=actor,
                    requested_ns=time.time_ns(),
                    state="pending",
                )
            )
        return request_id

    def sent(self, request_id: str, command_id: str | None, error: str | None) -> dict[str, Any]:
        """Record the command that carries the request, or why none could be sent."""
        with self.store.session() as s:
            row = s.get(PcapRequest, request_id)
            assert row is not None, request_id
            row.command_id = command_id
            if error:
                row.state, row.reason = "failed", error[:512]
            return self.view(s, row)

    def get(self, request_id: str) -> PcapRequest | None:
        with self.store.session() as s:
            return s.get(PcapRequest, request_id)

    def status(self, request_id: str) -> dict[str, Any] | None:
        """The view of a request, None if there is no such request."""
        with self.store.session() as s:
            row = s.get(PcapRequest, request_id)
            return None if row is None else self.view(s, row)
