"""The sensor's PCAP stream: header line + raw bytes per chunk, read lazily, sent through a
bounded window of unacknowledged publishes."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from otwatch.sync.pcap import PcapSender, PcapStream, file_digest
from otwatch.sync.protocol.messages import MAX_BYTES, ProtocolError, decode_pcap_chunk
from otwatch.sync.protocol.topics import up_topic

RID = "0" * 8 + "-0000-4000-8000-" + "0" * 12


@pytest.fixture
def blob(tmp_path):
    path = tmp_path / "f.pcap"
    data = os.urandom(300_001)
    path.write_bytes(data)
    return path, data


def test_chunks_carry_the_header_and_the_raw_bytes(blob):
    path, data = blob
    stream = PcapStream.open(path, sensor_id="s-1.x", request_id=RID, alert_id=7)
    messages = list(stream.messages())
    assert len(messages) == stream.total == 3
    got = b""
    for index, message in enumerate(messages):
        assert message.topic == up_topic("s-1.x", "pcap", RID)
        assert len(message.payload) <= MAX_BYTES["pcap"]
        header, chunk = decode_pcap_chunk(message.payload)
        assert (header.index, header.total, header.size) == (index, 3, len(data))
        assert header.sha256 == hashlib.sha256(data).hexdigest()
        assert (header.alert_id, header.sensor_id, header.request_id) == (7, "s-1.x", RID)
        got += bytes(chunk)
    assert got == data


def test_only_the_asked_indexes_are_sent(blob):
    path, data = blob
    stream = PcapStream.open(path, sensor_id="s1", request_id=RID, alert_id=7, only=[2, 1, 9])
    headers = [decode_pcap_chunk(m.payload)[0] for m in stream.messages()]
    assert [h.index for h in headers] == [1, 2] and {h.total for h in headers} == {3}
    last = bytes(decode_pcap_chunk(list(stream.messages())[-1].payload)[1])
    assert last == data[2 * stream.chunk_bytes :]


def test_the_digest_is_remembered_until_the_file_changes(blob):
    path, data = blob
    assert file_digest(path) == (hashlib.sha256(data).hexdigest(), len(data))
    path.write_bytes(b"other")
    assert file_digest(path) == (hashlib.sha256(b"other").hexdigest(), 5)


def test_a_payload_without_header_line_is_malformed():
    with pytest.raises(ProtocolError) as info:
        decode_pcap_chunk(b'{"v": 1, "data": "AAAA"}')
    assert info.value.reason == "malformed"


class SlowBroker:
    """Acknowledges each publish after a few loop turns; records the most in flight."""

    def __init__(self) -> None:
        self.flying = self.most = 0
        self.payloads: list[bytes] = []

    async def publish(self, topic: str, payload: bytes) -> None:
        self.flying += 1
        self.most = max(self.most, self.flying)
        for _ in range(3):
            await asyncio.sleep(0)
        self.payloads.append(payload)
        self.flying -= 1


def test_the_sender_keeps_at_most_a_window_in_flight(tmp_path):
    path = tmp_path / "big.pcap"
    data = os.urandom(40 * 1000 + 17)
    path.write_bytes(data)
    stream = PcapStream.open(path, sensor_id="s1", request_id=RID, alert_id=1, chunk_bytes=1000)
    sender, broker = PcapSender(window=4), SlowBroker()

    async def run() -> None:
        task = asyncio.ensure_future(sender.run(broker))
        sender.add(stream)  # while the task waits: it wakes up
        while sender.sent < stream.total:
            await asyncio.sleep(0.001)
        task.cancel()

    asyncio.run(run())
    assert broker.most == 4
    chunks = sorted((decode_pcap_chunk(p) for p in broker.payloads), key=lambda c: c[0].index)
    assert b"".join(bytes(c) for _h, c in chunks) == data


def test_an_unreadable_file_is_skipped_and_the_sender_goes_on(tmp_path):
    good = tmp_path / "good.pcap"
    good.write_bytes(b"abc")
    gone = tmp_path / "gone.pcap"
    gone.write_bytes(b"xyz")
    first = PcapStream.open(gone, sensor_id="s1", request_id=RID, alert_id=1)
    gone.unlink()
    second = PcapStream.open(good, sensor_id="s1", request_id=RID, alert_id=2)
    sender, broker = PcapSender(), SlowBroker()
    sender.add(first)
    sender.add(second)

    async def run() -> None:
        task = asyncio.ensure_future(sender.run(broker))
        while sender.sent < 1:
            await asyncio.sleep(0.001)
        task.cancel()

    asyncio.run(run())
    [payload] = broker.payloads
    assert decode_pcap_chunk(payload)[0].alert_id == 2
