"""The collector: detections from several workers become one set of alerts, no duplicates."""

from __future__ import annotations

from sqlalchemy import select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.capture.config import CaptureConfig, EvidenceConfig, RingConfig
from otwatch.agent.capture.evidence import Evidence
from otwatch.agent.capture.status import CAPTURE_STATE, pcap_status
from otwatch.agent.daemon import Collector, DaemonOptions, status_line
from otwatch.agent.store.models import Alert
from otwatch.agent.store.models_pcap import PcapEvidence
from otwatch.agent.store.state import get_state
from otwatch.alerts.catalog import load_catalog
from tests.factories import T0, detection


def collector(store, workers=2, evidence=True) -> Collector:
    options = DaemonOptions(
        capture=CaptureConfig(("eth1",)),
        ring=RingConfig(directory=store.data_dir / "ring"),
        evidence=EvidenceConfig(directory=store.data_dir / "evidence"),
        workers=workers,
    )
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    ev = Evidence(store, options.evidence) if evidence else None
    return Collector(store, manager, options, ev, ring_budget_bytes=1 << 30)


def test_two_workers_seeing_the_same_host_make_one_alert(store):
    c = collector(store)
    det = detection(ts_ns=T0)
    c.handle(("det", 0, [(det, 3, T0, T0 + 5)]))
    c.handle(("det", 1, [(det._replace(ts_ns=T0 + 2), 2, T0 + 1, T0 + 9)]))
    c.flush()
    with store.session() as s:
        [alert] = s.scalars(select(Alert)).all()
    assert alert.detections == 5
    assert (alert.first_detection_ns, alert.last_detection_ns) == (T0, T0 + 9)
    # detected again by the other worker after the flush: the same alert grows
    c.handle(("det", 1, [(det, 1, T0 + 20, T0 + 20)]))
    c.flush()
    with store.session() as s:
        [alert] = s.scalars(select(Alert)).all()
        [ev] = s.scalars(select(PcapEvidence)).all()
    assert alert.detections == 6 and (c.alerts_new, c.alerts_updated) == (1, 1)
    assert ev.alert_id == alert.id and ev.status == "pending"
    assert ev.window_end_ns == T0 + 20 + 30 * 1_000_000_000


def test_status_sums_the_workers_and_reports_disk_full(store):
    c = collector(store)
    for index, (received, drops) in enumerate(((100, 1), (50, 0))):
        c.handle(
            ("stats", index, {
                "pid": 10 + index,
                "sources": [{"interface": "eth1", "received": received,
                             "kernel_packets": received + drops, "kernel_drops": drops}],
                "ring": {"packets": received, "bytes": 1000, "dropped": 2 * index,
                         "disk_full": index, "last_disk_full_ns": T0 * index or None,
                         "high_water_ns": T0 + index, "evicted": 0, "segments": 0},
                "pipeline": {"packets": received, "detections": 0},
                "ts_ns": T0,
            })
        )  # fmt: skip
    c.state = "capturing"
    status = c.save_status()
    assert status["interfaces"]["eth1"] == {
        "received": 150, "kernel_packets": 151, "kernel_drops": 1
    }  # fmt: skip
    assert status["ring"]["disk_full"] == 1 and status["ring"]["dropped"] == 2
    assert "disk full" in status["notes"][0]
    assert [w["packets"] for w in status["per_worker"]] == [100, 50]
    line = status_line(status)
    assert "150 packets" in line and "1 kernel drops" in line and "disk full" in line
    with store.session() as s:
        assert get_state(s, CAPTURE_STATE)["state"] == "capturing"
    shown = pcap_status(store)
    assert shown["capture"]["kernel_drops"] == 1 and shown["ring"]["disk_full"] == 1


def test_worker_errors_are_collected(store):
    c = collector(store, evidence=False)
    c.handle(("error", 1, "cannot capture on eth9: no such network interface: eth9"))
    c.handle(("ready", 0, {}))
    assert c.errors == ["cannot capture on eth9: no such network interface: eth9"]
    assert c.workers[0].ready and not c.workers[1].ready
