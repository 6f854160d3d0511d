"""PCAP pulls: chunks reassembled and verified, missing ones re-requested, bad ones refused."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.catalog import load_catalog
from otwatch.agent.sensor import SensorIdentity
from otwatch.central.ingest import CentralSync
from otwatch.central.pcap import PcapAssembler, PcapError
from otwatch.sync.engine import SensorSync
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.factories import detection
from tests.syncnet import Net

RID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"


def chunks(blob: bytes, size: int) -> list[dict]:
    parts = [blob[i : i + size] for i in range(0, len(blob), size)]
    sha = hashlib.sha256(blob).hexdigest()
    return [
        {"index": i, "total": len(parts), "size": len(blob), "sha256": sha,
         "data": base64.b64encode(p).decode()}
        for i, p in enumerate(parts)
    ]  # fmt: skip


def test_chunks_in_any_order_give_the_verified_file():
    blob = bytes(range(256)) * 10
    asm = PcapAssembler()
    asm.expect("s1", 7, RID, 0)
    parts = chunks(blob, 1000)
    assert asm.add("s1", RID, now=1, **parts[2]) is None
    assert asm.add("s1", RID, now=1, **parts[0]) is None
    done = asm.add("s1", RID, now=2, **parts[1])
    assert done.data == blob and done.transfer.alert_id == 7
    assert RID not in asm.transfers


def test_missing_chunks_are_re_requested_after_a_stall_then_given_up():
    asm = PcapAssembler(stall_ns=10, max_rerequests=2)
    asm.expect("s1", 7, RID, 0)
    parts = chunks(b"x" * 3000, 1000)
    asm.add("s1", RID, now=0, **parts[1])
    assert asm.stalled(5) == []
    [(_transfer, missing)] = asm.stalled(10)
    assert missing == [0, 2]
    assert len(asm.stalled(20)) == 1
    assert asm.stalled(30) == [] and RID not in asm.transfers


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c.update(sha256="0" * 64),
        lambda c: c.update(data="@@not base64@@"),
        lambda c: c.update(index=9),
    ],
)
def test_bad_chunks_are_refused(tamper):
    asm = PcapAssembler()
    asm.expect("s1", 7, RID, 0)
    [chunk] = chunks(b"abc", 1000)
    tamper(chunk)
    with pytest.raises(PcapError):
        asm.add("s1", RID, now=0, **chunk)


def test_unrequested_or_foreign_chunks_are_refused():
    asm = PcapAssembler()
    [chunk] = chunks(b"abc", 1000)
    with pytest.raises(PcapError):
        asm.add("s1", RID, now=0, **chunk)
    asm.expect("s1", 7, RID, 0)
    with pytest.raises(PcapError):
        asm.add("s2", RID, now=0, **chunk)


def test_pull_through_sensor_and_central_with_a_lost_chunk(store, central_store, tmp_path):  # noqa: F811
    blob = bytes(range(256)) * 1500  # three chunks
    path = tmp_path / "evidence.pcap"
    path.write_bytes(blob)

    class Provider:
        def get(self, alert_id):
            return path

    class Sink:
        files: list = []

        def store(self, sensor_id, alert_id, request_id, data):
            self.files.append((sensor_id, alert_id, data))

    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    manager.observe(detection())
    manager.flush()
    sensor = SensorSync(store, SensorIdentity("s1"), pcap=Provider(),
                        manager_factory=lambda: manager)  # fmt: skip
    sink = Sink()
    net = Net(sensor, CentralSync(central_store, pcap_sink=sink))
    net.connect_central()
    net.connect_sensor()
    net.settle()
    result = net.issue("s1", "pcap", alert_id=1, actor="admin")
    # Deliver the command, then lose the second chunk on its way up.
    net.step()
    lost = [m for m in net.up if json.loads(m.payload).get("index") == 1]
    assert lost
    net.up.remove(lost[0])
    net.settle()
    assert sink.files == []  # still waiting for chunk 1
    net.tick(11)
    net.settle()
    assert sink.files == [("s1", 1, blob)]
    assert result.request_id not in net.central.pcap.transfers
