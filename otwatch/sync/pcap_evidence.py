"""The sensor's ``PcapProvider``: an alert's PCAP, exactly as ``otwatch pcap get`` writes it.

``get`` calls ``export_alert_pcap`` with the agent's evidence window settings (the defaults of
``otwatch pcap get``), so the file central receives is byte-identical to the one an operator
gets on the sensor. The export is kept for ``reuse_s`` so that central's re-requests of
missing chunks read the same bytes even if the alert is detected again meanwhile; older
exports are deleted.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from otwatch.agent.capture.evidence import EvidenceNotFound, PcapUnavailable, export_alert_pcap
from otwatch.agent.capture.status import CAPTURE_STATE
from otwatch.agent.store.db import Store
from otwatch.agent.store.state import get_state

__all__ = ["EvidencePcapProvider", "evidence_window"]

log = logging.getLogger(__name__)


def evidence_window(store: Store) -> tuple[float, float]:
    """(before_s, after_s) the agent reports, else ``otwatch pcap get``'s defaults (30, 30)."""
    with store.session() as session:
        status: dict[str, Any] = get_state(session, CAPTURE_STATE, None) or {}
    settings = status.get("evidence") or {}
    return float(settings.get("before_s", 30.0)), float(settings.get("after_s", 30.0))


class EvidencePcapProvider:
    def __init__(self, store: Store, *, reuse_s: float = 600.0) -> None:
        self.store = store
        self.directory = Path(store.data_dir) / "pcap-exports"
        self.reuse_ns = int(reuse_s * 1e9)

    def _cleanup(self, now: int) -> None:
        for old in self.directory.glob("alert-*.pcap*"):
            try:
                if now - old.stat().st_mtime_ns > self.reuse_ns:
                    old.unlink(missing_ok=True)
            except OSError:
                continue

    def get(self, alert_id: int) -> Path | None:
        now = time.time_ns()
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"alert-{int(alert_id)}.pcap"
        try:
            if target.exists() and now - target.stat().st_mtime_ns <= self.reuse_ns:
                return target
        except OSError:
            pass
        self._cleanup(now)
        before_s, after_s = evidence_window(self.store)
        try:
            export_alert_pcap(
                self.store, alert_id, target, before_s=before_s, after_s=after_s, force=True
            )
        except (PcapUnavailable, EvidenceNotFound) as exc:
            log.info("PCAP of alert %s not available: %s", alert_id, exc)
            return None
        return target
