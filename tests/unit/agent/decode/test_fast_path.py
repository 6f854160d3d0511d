"""``decode``'s short path for Ethernet/IPv4/TCP|UDP gives exactly ``decode_frame``'s record."""

from __future__ import annotations

import random
import struct
import sys
from itertools import islice
from pathlib import Path

from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.decode.headers import decode, decode_frame

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "bench"))
from gen_capture import mixed_plant, modbus_polling


def same(ts: int, wire_len: int, linktype: int, data: bytes) -> None:
    fast, full = decode(ts, wire_len, linktype, data), decode_frame(ts, wire_len, linktype, data)
    assert fast.as_dict() == full.as_dict(), data.hex()


def frames_of(path: Path, limit: int = 20_000):
    with open_capture(path) as capture:
        yield from islice(capture, limit)


def test_every_corpus_frame(pcaps) -> None:
    count = 0
    for path in sorted(pcaps.rglob("*.pcap*")):
        for frame in frames_of(path):
            same(*frame)
            count += 1
    assert count > 30_000


def test_generated_captures_and_their_mutants(tmp_path) -> None:
    """Bench captures (the short path's daily bread) and mutants of them that put every
    header field the short path trusts at a boundary: lengths, offsets, flags, protocol."""
    modbus_polling(tmp_path / "m.pcap", packets=2_000)
    mixed_plant(tmp_path / "x.pcap", packets=5_000)
    rng = random.Random(7)
    taken = 0
    for path in (tmp_path / "m.pcap", tmp_path / "x.pcap"):
        for ts, wire_len, linktype, data in frames_of(path):
            same(ts, wire_len, linktype, data)
            for _ in range(3):
                buf = bytearray(data)
                where = rng.choice((12, 14, 16, 20, 23, 38, 46, 38 + 4))  # et, vihl, tlen,
                if where in (16, 38):  # frag, proto, udp len, tcp data offset
                    struct.pack_into("!H", buf, where, rng.randrange(0, 1 << 16))
                else:
                    buf[where] = rng.randrange(256)
                cut = rng.choice((len(buf), len(buf), rng.randrange(40, len(buf) + 1)))
                same(ts, wire_len, linktype, bytes(buf[:cut]))
                taken += 1
    assert taken > 15_000
