"""Health figures shared by ``otwatch status``, the daemons' sd_notify STATUS lines and their
Prometheus metrics (``otwatch.metrics``): one place computes them, three places show them.

Sensor figures come from the database the agent, the sync daemon and the CLI share: the
capture state the agent saves every second (``capture_status``), the sync daemon's connection
state (:data:`SYNC_STATE`, saved by :class:`SyncTracker`), the outbox, the alerts and the
PCAP ring index. Central figures come from its ``sensors`` table (or the API's ``/sensors``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from otwatch.agent.capture.status import CAPTURE_STATE, pcap_status
from otwatch.agent.store.db import Store
from otwatch.agent.store.state import get_state, put_state
from otwatch.timeutil import NS_PER_S, format_iso

__all__ = [
    "SILENT_AFTER_S",
    "STALE_AFTER_S",
    "SYNC_STATE",
    "SyncTracker",
    "central_health",
    "central_sensor_rows",
    "sensor_health",
]

SYNC_STATE = "sync.status"
"""``sensor_state`` key the sync daemon refreshes on every (dis)connect and ack."""
STALE_AFTER_S = 120.0
"""A daemon whose saved state is older than this (and not stopped) is reported ``stale``:
it died without saying so (SIGKILL, power loss)."""
SILENT_AFTER_S = 180.0
"""Central: a sensor marked online but not heard from for this long is ``silent`` (its
status interval is 30 s; the broker's last will normally marks it offline sooner)."""
STATUSES = ("new", "active", "closed")


# -- the sync daemon's connection state ----------------------------------------------------


@dataclass
class SyncTracker:
    """What the sync daemon knows about its link to central, saved into ``sensor_state``."""

    broker: str
    state: str = "starting"
    since_ns: int = field(default_factory=time.time_ns)
    last_ack_ns: int | None = None
    acked_seq: int = 0
    last_error: str | None = None
    connects: int = 0
    saved_ns: int = 0

    @classmethod
    def resume(cls, store: Store, broker: str, acked_seq: int) -> SyncTracker:
        """A tracker that keeps the last ack time a previous run saved."""
        with store.session() as session:
            saved = get_state(session, SYNC_STATE, None) or {}
        return cls(broker, acked_seq=acked_seq, last_ack_ns=saved.get("last_ack_ns"))

    def connected(self, now: int) -> None:
        self.state, self.since_ns, self.last_error = "connected", now, None
        self.connects += 1

    def disconnected(self, now: int, error: str | None) -> None:
        if self.state == "connected" or self.state == "starting":
            self.since_ns = now
        self.state = "disconnected"
        self.last_error = error or self.last_error

    def acked(self, seq: int, now: int) -> bool:
        """Central acknowledged events up to ``seq``; True when that moved forward."""
        if seq <= self.acked_seq:
            return False
        self.acked_seq, self.last_ack_ns = seq, now
        return True

    def as_dict(self, now: int | None = None) -> dict[str, Any]:
        return {
            "state": self.state,
            "broker": self.broker,
            "since_ns": self.since_ns,
            "last_ack_ns": self.last_ack_ns,
            "acked_seq": self.acked_seq,
            "last_error": self.last_error,
            "connects": self.connects,
            "pid": os.getpid(),
            "updated_ns": now or time.time_ns(),
        }

    def save(self, store: Store, now: int | None = None) -> None:
        now = now or time.time_ns()
        with store.session() as session:
            put_state(session, SYNC_STATE, self.as_dict(now))
        self.saved_ns = now

    def line(self, depth: int | None, now: int | None = None) -> str:
        """The one-line summary for systemd's STATUS (``systemctl status otwatch-sync``)."""
        now = now or time.time_ns()
        text = f"{self.state} to {self.broker}"
        if self.state != "connected" and self.last_error:
            text += f" ({self.last_error[:120]})"
        if depth is not None:
            text += f"; outbox {depth:,} pending"
        if self.last_ack_ns:
            text += f"; last ack {(now - self.last_ack_ns) / NS_PER_S:.0f} s ago"
        return text


# -- sensor ---------------------------------------------------------------------------------


def _age_s(updated_ns: int | None, now: int) -> float | None:
    return None if not updated_ns else max(0.0, (now - updated_ns) / NS_PER_S)


def _liveness(saved: dict[str, Any] | None, now: int, stopped: tuple[str, ...]) -> str:
    if not saved:
        return "never run"
    state = str(saved.get("state", "unknown"))
    age = _age_s(saved.get("updated_ns"), now)
    if state not in stopped and age is not None and age > STALE_AFTER_S:
        return "stale"
    return state


def sensor_health(store: Store, now: int | None = None) -> dict[str, Any]:
    """Every figure ``otwatch status`` shows for a sensor, as JSON-able data."""
    from otwatch.agent.store.baseline import load_learning_ns
    from otwatch.agent.store.models import Alert
    from otwatch.sync import outbox

    now = now or time.time_ns()
    pcap = pcap_status(store)
    with store.session() as session:
        by_status = dict(
            session.execute(select(Alert.status, func.count()).group_by(Alert.status)).all()
        )
        acked = int(get_state(session, outbox.ACKED_HW, 0))
        depth = outbox.pending_depth(session, acked)
        sync_saved = get_state(session, SYNC_STATE, None)
        capture_saved = get_state(session, CAPTURE_STATE, None) or {}
        learning_ns = load_learning_ns(session)
        identity = {k: get_state(session, k, "") for k in ("sensor_id", "site", "zone")}
    interfaces = {}
    for name, figures in sorted((capture_saved.get("interfaces") or {}).items()):
        interfaces[name] = {
            "received": int(figures.get("received", 0)),
            "kernel_drops": int(figures.get("kernel_drops", 0)),
            "rate_pps": figures.get("rate_pps"),
        }
    sync = dict(sync_saved or {})
    sync_state = _liveness(sync_saved, now, ("stopped",))
    return {
        "sensor": {
            "id": identity["sensor_id"] or None,
            "site": identity["site"],
            "zone": identity["zone"],
        },
        "learning": {"active": learning_ns > 0, "remaining_s": learning_ns / NS_PER_S},
        "capture": {
            "state": _liveness(capture_saved or None, now, ("stopped", "failed")),
            "updated": format_iso(capture_saved.get("updated_ns")),
            "workers": capture_saved.get("workers"),
            "interfaces": interfaces,
            "received": sum(i["received"] for i in interfaces.values()),
            "kernel_drops": sum(i["kernel_drops"] for i in interfaces.values()),
            "not_analysed": int((capture_saved.get("pipeline") or {}).get("not_analysed", 0)),
            "notes": list(capture_saved.get("notes") or []),
        },
        "alerts": {s: int(by_status.get(s, 0)) for s in STATUSES},
        "outbox": {"depth": depth, "acked_seq": acked},
        "sync": {
            "state": sync_state,
            "broker": sync.get("broker"),
            "since": format_iso(sync.get("since_ns")),
            "last_ack": format_iso(sync.get("last_ack_ns")),
            "last_ack_age_s": _age_s(sync.get("last_ack_ns"), now),
            "last_error": sync.get("last_error"),
            "updated": format_iso(sync.get("updated_ns")),
        },
        "ring": {
            "bytes": pcap["ring"]["bytes"],
            "budget_bytes": pcap["ring"]["budget_bytes"],
            "segments": pcap["ring"]["segments"],
            "oldest": format_iso(pcap["ring"]["oldest_ns"]),
            "newest": format_iso(pcap["ring"]["newest_ns"]),
            "dropped_frames": int(pcap["ring"]["dropped_frames"] or 0),
        },
        "evidence": {
            "files": pcap["evidence"]["files"],
            "bytes": pcap["evidence"]["bytes"],
            "budget_bytes": pcap["evidence"]["budget_bytes"],
            "backlog": pcap["evidence"]["backlog"],
        },
    }


# -- central --------------------------------------------------------------------------------


def central_sensor_rows(session: Any) -> list[dict[str, Any]]:
    """Central's sensors in the API's ``/sensors`` shape (``last_seen`` as ISO text)."""
    from otwatch.central.store.sensors import all_sensors

    return [
        {
            "sensor": s.id,
            "site": s.site,
            "zone": s.zone,
            "online": s.online,
            "last_seen": format_iso(s.last_seen_ns),
            "version": s.version,
            "health": s.health or {},
        }
        for s in all_sensors(session)
    ]


def central_health(sensors: list[dict[str, Any]], now: int | None = None) -> dict[str, Any]:
    """Online/offline and lag per sensor, from ``/sensors`` rows (API or database).

    Lag is two figures: how long ago central last heard from the sensor, and how many events
    the sensor still holds for central (its outbox depth, from its last status message).
    """
    from otwatch.timeutil import parse_time_ns

    now = now or time.time_ns()
    rows = []
    for sensor in sensors:
        seen_ns = parse_time_ns(sensor["last_seen"]) if sensor.get("last_seen") else None
        age = _age_s(seen_ns, now)
        state = "online" if sensor.get("online") else "offline"
        if state == "online" and age is not None and age > SILENT_AFTER_S:
            state = "silent"
        health = sensor.get("health") or {}
        rows.append(
            {
                "sensor": sensor["sensor"],
                "site": sensor.get("site", ""),
                "zone": sensor.get("zone", ""),
                "state": state,
                "last_seen": sensor.get("last_seen"),
                "last_seen_age_s": None if age is None else round(age, 1),
                "outbox_depth": health.get("outbox_depth"),
                "capture_drops": health.get("capture_drops"),
                "version": sensor.get("version", ""),
            }
        )
    counts = {s: sum(1 for r in rows if r["state"] == s) for s in ("online", "silent", "offline")}
    return {"sensors": rows, **counts}
