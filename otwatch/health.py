"""The sensor's health figures, shared by ``otwatch status``, the daemons' sd_notify STATUS
lines and their Prometheus metrics (``otwatch.metrics``): one place computes them, three
places show them. Central's side is ``otwatch.central.health``.

They come from the database the agent, the sync daemon and the CLI share: the capture state
the agent saves every second (``capture_status``), the sync daemon's connection state
(``otwatch.sync.tracker``), the outbox, the alerts and the PCAP ring index.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select

from otwatch.agent.capture.status import CAPTURE_STATE, pcap_status
from otwatch.agent.store.baseline import load_learning_ns
from otwatch.agent.store.db import Store
from otwatch.agent.store.models import Alert
from otwatch.agent.store.state import get_state
from otwatch.sync import outbox
from otwatch.sync.tracker import SYNC_STATE
from otwatch.timeutil import NS_PER_S, age_s, format_iso

__all__ = ["STALE_AFTER_S", "sensor_health"]

STALE_AFTER_S = 120.0
"""A daemon whose saved state is older than this (and not stopped) is reported ``stale``:
it died without saying so (SIGKILL, power loss)."""
STATUSES = ("new", "active", "closed")


def _liveness(saved: dict[str, Any] | None, now: int, stopped: tuple[str, ...]) -> str:
    if not saved:
        return "never run"
    state = str(saved.get("state", "unknown"))
    age = age_s(saved.get("updated_ns"), now)
    if state not in stopped and age is not None and age > STALE_AFTER_S:
        return "stale"
    return state


def sensor_health(store: Store, now: int | None = None) -> dict[str, Any]:
    """Every figure ``otwatch status`` shows for a sensor, as JSON-able data."""
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
            "last_ack_age_s": age_s(sync.get("last_ack_ns"), now),
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
