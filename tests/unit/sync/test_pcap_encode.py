"""The fast PCAP chunk encoder writes exactly what the generic JSON encoder writes."""

from __future__ import annotations

import os

from otwatch.sync.pcap import encode_chunk, file_chunks
from otwatch.sync.protocol.messages import MAX_BYTES, PcapChunk, decode, encode_raw


def test_encode_chunk_equals_encode_raw(tmp_path):
    path = tmp_path / "f.pcap"
    path.write_bytes(os.urandom(300_001))
    chunks = list(
        file_chunks(
            path, sensor_id="s-1.x", request_id="0" * 8 + "-0000-4000-8000-" + "0" * 12, alert_id=7
        )
    )
    assert len(chunks) == 3
    for chunk in chunks:
        payload = encode_chunk(chunk)
        assert payload == encode_raw(chunk)
        assert decode(PcapChunk, payload, MAX_BYTES["pcap"]).index == chunk["index"]
