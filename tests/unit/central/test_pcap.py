"""PCAP pulls: chunks written into place and verified, missing ones re-requested, a silent
sensor given up on, bad chunks refused."""

from __future__ import annotations

import json

import pytest

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.sensor import SensorIdentity
from otwatch.alerts.catalog import load_catalog
from otwatch.central.ingest import CentralSync
from otwatch.central.pcap import PcapAssembler, PcapDone, PcapError
from otwatch.sync.protocol.messages import ProtocolError, encode_pcap_chunk
from otwatch.sync.sensor_sync import SensorSync
from tests.centralapi import pcap_chunks
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.factories import detection
from tests.syncnet import Net

RID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"


class Sink:
    """Keeps the verified files' bytes; part files go to a test directory."""

    def __init__(self, root):
        self.root = root
        self.files: list[tuple[str, int, bytes]] = []

    def part_path(self, request_id):
        return self.root / f"{request_id}.part"

    def store(self, done: PcapDone) -> None:
        t = done.transfer
        self.files.append((t.sensor_id, t.alert_id, done.path.read_bytes()))
        done.path.unlink()


@pytest.fixture
def asm(tmp_path):
    assembler = PcapAssembler(Sink(tmp_path), stall_ns=10, max_rerequests=2)
    assembler.expect("s1", 7, RID, 0)
    return assembler


def test_chunks_in_any_order_give_the_verified_file(asm, tmp_path):
    blob = bytes(range(256)) * 10
    parts = pcap_chunks(blob, RID, alert_id=7)
    assert asm.receive("s1", RID, parts[2][1], now=1) is None
    assert asm.receive("s1", RID, parts[0][1], now=1) is None
    assert asm.receive("s1", RID, parts[0][1], now=1) is None  # a duplicate changes nothing
    done = asm.receive("s1", RID, parts[1][1], now=2)
    assert done.path.read_bytes() == blob and done.transfer.alert_id == 7
    assert done.size == len(blob) and RID not in asm.transfers
    assert [p.name for p in tmp_path.iterdir()] == [f"{RID}.part"]  # no other copy


def test_empty_file_is_one_empty_chunk(asm):
    [(_topic, payload)] = pcap_chunks(b"", RID, alert_id=7)
    done = asm.receive("s1", RID, payload, now=1)
    assert done is not None and done.path.read_bytes() == b""


def test_missing_chunks_are_re_requested_after_a_stall_then_given_up(asm):
    parts = pcap_chunks(b"x" * 3000, RID, alert_id=7)
    asm.receive("s1", RID, parts[1][1], now=0)
    assert asm.stalled(5) == []
    [(_transfer, missing)] = asm.stalled(10)
    assert missing == [0, 2]
    assert len(asm.stalled(20)) == 1
    assert asm.take_given_up() == []
    assert asm.stalled(30) == [] and RID not in asm.transfers
    [given_up] = asm.take_given_up()
    assert "sent 1 of 3 chunks and then stopped" in given_up.reason
    assert "2 re-requests" in given_up.reason and asm.take_given_up() == []


def test_a_chunk_resets_the_count_of_silent_re_requests(asm):
    parts = pcap_chunks(b"x" * 3000, RID, alert_id=7)
    assert asm.stalled(10) == [(asm.transfers[RID], None)]  # nothing yet: everything
    assert len(asm.stalled(20)) == 1
    asm.receive("s1", RID, parts[0][1], now=25)
    assert asm.transfers[RID].rerequests == 0
    assert len(asm.stalled(35)) == 1 and len(asm.stalled(45)) == 1
    assert asm.stalled(55) == [] and len(asm.take_given_up()) == 1


def test_a_repeated_request_for_the_whole_file_keeps_the_transfer(asm):
    """Re-requesting everything (no chunk came yet) goes through ``expect`` again; it must
    not reset the count, or a silent sensor is re-requested forever."""
    asm.stalled(10)
    asm.expect("s1", 7, RID, 10)
    asm.stalled(20)
    asm.expect("s1", 7, RID, 20)
    assert asm.stalled(30) == []
    [given_up] = asm.take_given_up()
    assert "never sent a chunk" in given_up.reason


def test_a_wrong_digest_starts_the_transfer_over(asm):
    blob = b"y" * 2500
    parts = pcap_chunks(blob, RID, alert_id=7)
    tampered = parts[0][1].replace(b"\n" + b"y" * 1000, b"\n" + b"z" * 1000)
    assert tampered != parts[0][1]
    asm.receive("s1", RID, tampered, now=0)
    asm.receive("s1", RID, parts[1][1], now=0)
    with pytest.raises(PcapError, match="SHA-256"):
        asm.receive("s1", RID, parts[2][1], now=0)
    transfer = asm.transfers[RID]
    assert transfer.count == 0 and transfer.restarts == 1
    assert asm.stalled(0) == [(transfer, None)]  # everything again, without waiting a stall
    for _topic, payload in parts:
        done = asm.receive("s1", RID, payload, now=1)
    assert done is not None and done.path.read_bytes() == blob


def _header(payload: bytes) -> dict:
    return json.loads(payload.split(b"\n", 1)[0])


def _with(payload: bytes, **changes) -> bytes:
    head, data = payload.split(b"\n", 1)
    return encode_pcap_chunk({**json.loads(head), **changes}, data)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: _with(p, index=9),
        lambda p: p[:-1],  # shorter than the header says
        lambda p: _with(p, chunk_bytes=500),  # total no longer matches
    ],
)
def test_bad_chunks_are_refused(asm, tamper):
    first, second = (p for _t, p in pcap_chunks(b"abc" * 600, RID, alert_id=7))
    asm.receive("s1", RID, first, now=0)
    with pytest.raises(PcapError):
        asm.receive("s1", RID, tamper(second), now=0)
    assert asm.transfers[RID].count == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"v": 1}', "malformed"),  # no header line
        (b"not json\n" + b"x" * 10, "malformed"),
        (b'{"v": 1, "sensor_id": "s1"}\nxyz', "invalid"),
        (b"x" * (300 << 10), "oversized"),
    ],
)
def test_malformed_messages_are_protocol_errors(asm, payload, reason):
    with pytest.raises(ProtocolError) as info:
        asm.receive("s1", RID, payload, now=0)
    assert info.value.reason == reason


def test_unrequested_or_foreign_chunks_are_refused(tmp_path):
    asm = PcapAssembler(Sink(tmp_path))
    [(_topic, payload)] = pcap_chunks(b"abc", RID, alert_id=7)
    with pytest.raises(PcapError):
        asm.receive("s1", RID, payload, now=0)
    asm.expect("s1", 7, RID, 0)
    with pytest.raises(ProtocolError) as info:
        asm.receive("s2", RID, payload, now=0)  # the topic's sensor is not the payload's
    assert info.value.reason == "wrong_sensor"
    [(_topic, foreign)] = pcap_chunks(b"abc", RID, sensor="s2", alert_id=7)
    with pytest.raises(PcapError):
        asm.receive("s2", RID, foreign, now=0)


def test_cancel_deletes_the_part_file(asm, tmp_path):
    parts = pcap_chunks(b"q" * 2500, RID, alert_id=7)
    asm.receive("s1", RID, parts[0][1], now=0)
    assert (tmp_path / f"{RID}.part").exists()
    asm.cancel(RID)
    assert not (tmp_path / f"{RID}.part").exists() and RID not in asm.transfers


def test_pull_through_sensor_and_central_with_a_lost_chunk(store, central_store, tmp_path):  # noqa: F811
    blob = bytes(range(256)) * 1500  # three chunks
    path = tmp_path / "evidence.pcap"
    path.write_bytes(blob)

    class Provider:
        def get(self, alert_id):
            return path

    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    manager.observe(detection())
    manager.flush()
    sensor = SensorSync(store, SensorIdentity("s1"), pcap=Provider(),
                        triage_factory=lambda: manager)  # fmt: skip
    (tmp_path / "parts").mkdir()
    sink = Sink(tmp_path / "parts")
    net = Net(sensor, CentralSync(central_store, pcap_sink=sink))
    net.connect_central()
    net.connect_sensor()
    net.settle()
    result = net.issue("s1", "pcap", alert_id=1, actor="admin")
    # Deliver the command, then lose the second chunk on its way up.
    net.step()
    lost = [m for m in net.up if "/pcap/" in m.topic and _header(m.payload)["index"] == 1]
    assert lost
    net.up.remove(lost[0])
    net.settle()
    assert sink.files == []  # still waiting for chunk 1
    net.tick(11)
    net.settle()
    assert sink.files == [("s1", 1, blob)]
    assert result.request_id not in net.central.pcap.transfers


def test_a_chunk_that_disagrees_starts_the_transfer_over_from_it(asm):
    """A damaged first chunk (wrong digest) no longer makes every correct chunk refused."""
    blob = b"q" * 2500
    parts = [p for _t, p in pcap_chunks(blob, RID, alert_id=7)]
    asm.receive("s1", RID, _with(parts[0], sha256="0" * 64), now=0)
    assert asm.receive("s1", RID, parts[1], now=0) is None  # taken: the transfer restarted
    transfer = asm.transfers[RID]
    assert transfer.restarts == 1 and transfer.count == 1
    assert asm.stalled(1) == [(transfer, None)]
    done = None
    for payload in parts:  # the sensor's answer to the re-request
        done = asm.receive("s1", RID, payload, now=2) or done
    assert done is not None and done.path.read_bytes() == blob


def test_restarts_are_bounded_then_the_transfer_is_given_up(asm):
    parts = [p for _t, p in pcap_chunks(b"r" * 2500, RID, alert_id=7)]
    asm.receive("s1", RID, parts[0], now=0)
    for n in range(asm.max_restarts):
        asm.receive("s1", RID, _with(parts[1], sha256=f"{n + 1:064x}"), now=0)
    with pytest.raises(PcapError, match="given up"):
        asm.receive("s1", RID, parts[2], now=0)
    assert RID not in asm.transfers
    [given_up] = asm.take_given_up()
    assert "started over 3 times" in given_up.reason
