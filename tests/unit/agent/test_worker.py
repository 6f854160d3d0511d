"""The capture loop and detection forwarding, driven in-process by a scripted source."""

from __future__ import annotations

import socket
from pathlib import Path

from sqlalchemy import select

from otwatch.agent.capture.config import RingConfig
from otwatch.agent.capture.ring import RingWriter
from otwatch.agent.capture.ring_segments import iter_segment
from otwatch.agent.capture.source import CaptureSource, SourceStats
from otwatch.agent.pipeline import Pipeline
from otwatch.agent.store.models import BaselineFact
from otwatch.agent.store.models_pcap import PcapSegment
from otwatch.agent.worker import CaptureLoop, ForwardingManager
from otwatch.alerts.catalog import load_catalog
from tests.factories import T0, detection, eth, ether_frames


class ScriptedSource(CaptureSource):
    """Hands out pre-made batches; the kernel 'accepted' them all (some only at drain)."""

    def __init__(self, batches, held_back=()):
        self.name = "test0"
        self.linktype, self.nanosecond = 1, True
        self._batches = list(batches)
        self._held = list(held_back)
        self._stats = SourceStats("test0")
        total = sum(len(b) for b in self._batches) + sum(len(b) for b in self._held)
        self._stats.kernel_packets = total
        self._pair = socket.socketpair()

    def fileno(self):
        return self._pair[0].fileno()

    def read_batch(self):
        if self._batches:
            batch = self._batches.pop(0)
        elif self._held and self.draining:
            batch = self._held.pop(0)
        else:
            return []
        self._stats.received += len(batch)
        return batch

    draining = False

    def stats(self):
        return self._stats

    def close(self):
        for s in self._pair:
            s.close()


def scan(n: int, src: str = "192.0.2.5", dst: str = "192.0.2.9"):
    from scapy.layers.inet import IP, TCP

    return [eth() / IP(src=src, dst=dst) / TCP(sport=40000, dport=p, flags="S") for p in range(n)]


def loop_for(store, source, messages, ring=True, **kw):
    writer = (
        RingWriter(store, RingConfig(directory=Path(store.data_dir) / "ring", max_percent=None))
        if ring
        else None
    )
    manager = ForwardingManager(store, load_catalog(), messages.append, 0)
    pipeline = Pipeline(manager)  # type: ignore[arg-type]
    return CaptureLoop([source], pipeline, writer, send=messages.append, **kw)


def test_every_frame_reaches_ring_and_pipeline_and_stop_drains_the_rest(store):
    frames = ether_frames(scan(60))
    source = ScriptedSource([frames[:20], frames[20:40]], held_back=[frames[40:]])
    messages: list[tuple] = []
    loop = loop_for(store, source, messages)
    calls = {"n": 0}

    def stopping():
        calls["n"] += 1
        if calls["n"] > 3:
            source.draining = True
            return True
        return False

    loop.run(stopping)
    assert loop.pipeline.stats.packets == 60
    with store.session() as s:
        [seg] = s.scalars(select(PcapSegment)).all()
    assert seg.closed and seg.packets == 60
    assert list(iter_segment(Path(store.data_dir) / seg.path)) == frames
    kinds = [m[0] for m in messages]
    assert kinds[-1] == "done" and "det" in kinds
    done = messages[-1][2]
    assert done["sources"][0]["received"] == 60 and done["pipeline"]["packets"] == 60


def test_detections_are_merged_per_key_before_they_leave_the_worker(store):
    sent: list[tuple] = []
    fwd = ForwardingManager(store, load_catalog(), sent.append, worker=3)
    for i in range(5):
        fwd.observe(detection(ts_ns=T0 + (4 - i)))
    fwd.observe(detection(ts_ns=T0 + 100, src="192.0.2.77"))
    fwd.flush()
    fwd.flush()  # nothing new: nothing sent
    [(kind, worker, batch)] = sent
    assert (kind, worker, len(batch)) == ("det", 3, 2)
    merged = {d.fields["source_address"]: (count, first, last) for d, count, first, last in batch}
    assert merged["192.0.2.10"] == (5, T0, T0 + 4)
    assert merged["192.0.2.77"] == (1, T0 + 100, T0 + 100)


def test_workers_learn_what_other_workers_learned(store):
    messages: list[tuple] = []
    loop = loop_for(store, ScriptedSource([]), messages, ring=False, sync_baseline=True)
    with store.session() as s:
        s.add(
            BaselineFact(kind="device", key="192.0.2.200", attrs={}, first_seen_ns=1,
                         last_seen_ns=1, origin="learning")
        )  # fmt: skip
    loop.tick()
    assert "192.0.2.200" in loop.pipeline.ctx.baseline.kind("device")
    assert messages[-1][0] == "stats"


def test_a_repeat_merges_into_its_key_as_the_rebuilt_detection_would(store):
    sent: list[tuple] = []
    fwd = ForwardingManager(store, load_catalog(), sent.append, worker=1)
    det = detection(ts_ns=T0 + 50)
    fwd.repeat(det, T0 + 7)  # nothing pending: it starts the key with its own time
    fwd.repeat(det, T0 + 3)
    fwd.repeat(det, T0 + 90)
    fwd.observe(det)
    fwd.flush()
    [(_, _, [(first, count, first_ns, last_ns)])] = sent
    assert (first.ts_ns, count, first_ns, last_ns) == (T0 + 7, 4, T0 + 3, T0 + 90)
    assert fwd.detections == 4
