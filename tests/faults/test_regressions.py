"""Regression tests, without a broker or network, for the bugs the fault campaign found."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.daemon import _store_call
from otwatch.agent.store.db import StoreError
from otwatch.agent.store.models import Alert
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.lifecycle import Action, Origin
from tests.factories import T0, detection

HOUR_NS = 3600 * 1_000_000_000


def _manager(store, offset_ns: int = 0) -> AlertManager:
    return AlertManager(
        store, load_catalog(), sensor_id="s1", wall_ns=lambda: time.time_ns() + offset_ns
    )


def test_a_stale_clock_in_another_process_does_not_pull_later_stamps_back(store):
    """Clock jump back: the sync daemon's manager (loaded earlier, right time) applies a
    central command after the CLI stamped a change an hour ahead; the next CLI change after
    the jump must still order after the first one (it used to get an older stamp, and
    central kept the old value for good)."""
    agent = _manager(store)
    for n in (1, 2):
        agent.observe(detection(src=f"192.0.2.{n}", ts_ns=T0 + n))
    agent.flush()
    daemon = _manager(store)  # long-running, its clock loaded now
    [ahead] = _manager(store, HOUR_NS).apply([1], Action.SET_STATUS, actor="ana", value="active")
    assert ahead.outcome == "applied"
    with store.session() as s:
        first = s.get(Alert, 1).status_hlc
    central_hlc = daemon.clock.now()  # central's stamp, made before it saw the sensor's change
    [cmd] = daemon.apply(
        [2], Action.SET_SEVERITY, actor="admin", origin=Origin.CENTRAL, value="high",
        hlc=central_hlc,
    )  # fmt: skip
    assert cmd.outcome == "applied"
    _manager(store).apply([1], Action.SET_STATUS, actor="ana", value="closed")  # after the jump
    with store.session() as s:
        assert s.get(Alert, 1).status_hlc > first


def test_a_failed_flush_keeps_its_detections(store, monkeypatch):
    """Disk full during a flush: the detections wait for the next flush instead of vanishing."""
    manager = _manager(store)
    for _ in range(3):
        manager.observe(detection(ts_ns=T0))
    real = store.session

    @contextmanager
    def full():
        raise StoreError("database or disk is full")
        yield  # pragma: no cover

    monkeypatch.setattr(store, "session", full)
    with pytest.raises(StoreError):
        manager.flush()
    monkeypatch.setattr(store, "session", real)
    manager.observe(detection(ts_ns=T0 + 1))
    manager.flush()
    with store.session() as s:
        assert s.scalars(select(Alert.detections)).all() == [4]


def test_a_failing_periodic_store_write_is_counted_not_fatal():
    class Collector:
        store_errors = 0

    def full() -> None:
        raise StoreError("database or disk is full")

    collector = Collector()
    assert _store_call(collector, full) is None
    assert _store_call(collector, lambda: 7) == 7
    assert collector.store_errors == 1


def test_a_ring_index_write_on_a_full_disk_does_not_stop_the_worker():
    """The ring writes a segment's index row while rotating; on a full disk that raised out
    of the capture loop and the worker (and with it the live agent) stopped."""
    from types import SimpleNamespace

    from otwatch.agent.worker import CaptureLoop

    class FullRing:
        def write_batch(self, frames, linktype, nanosecond) -> None:
            raise StoreError("database or disk is full")

    loop = SimpleNamespace(ring=FullRing(), store_errors=0, worker=0)
    src = SimpleNamespace(linktype=1, nanosecond=True)
    CaptureLoop._ring_write(loop, [(1, 60, 1, b"\0" * 60)], src)
    assert loop.store_errors == 1
