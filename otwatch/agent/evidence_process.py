"""The agent's evidence process: cuts each alert's evidence window from the PCAP ring about
once a second, at low priority, beside the capture workers (``otwatch.agent.daemon``)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from otwatch.agent.capture.config import EvidenceConfig
from otwatch.agent.capture.evidence import Evidence
from otwatch.agent.store.db import StoreError, open_store

__all__ = ["EvidenceProcess"]

log = logging.getLogger(__name__)

PASS_S = 1.0
"""Seconds between extraction passes."""


def _extractor_main(data_dir: str, config: EvidenceConfig, stop_event: Any) -> None:
    """Evidence process: cut due windows from the ring about once a second, at low priority,
    so that neither the workers nor the collector's flushes wait for it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    with contextlib.suppress(OSError):
        os.nice(10)
    store = open_store(data_dir, migrate_schema=False)
    evidence = Evidence(store, config)
    try:
        while not stop_event.wait(PASS_S):
            try:
                evidence.extract_due(deadline=time.monotonic() + 5.0, stopping=stop_event.is_set)
            except (OSError, StoreError) as exc:  # disk full: the next pass tries again
                log.error("evidence extraction failed, retrying: %s", exc)
    finally:
        store.close()


class EvidenceProcess:
    """The evidence process, as the daemon's collector sees it."""

    def __init__(self, ctx: Any, data_dir: Path, config: EvidenceConfig) -> None:
        self.stop_event = ctx.Event()
        self.proc = ctx.Process(
            target=_extractor_main,
            args=(str(data_dir), config, self.stop_event),
            name="otwatch-evidence",
        )

    def start(self) -> None:
        self.proc.start()

    @property
    def failed(self) -> str | None:
        code = self.proc.exitcode
        if code is None or self.stop_event.is_set():
            return None
        return f"evidence extraction stopped (exit code {code}); capture goes on"

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
