"""The bounded dissection cache: hits for repeated payloads, a bound, errors cached as None."""

from __future__ import annotations

from scapy.packet import Packet

from otwatch.agent.decode.layers.cache import DissectCache
from otwatch.agent.decode.layers.dnp3 import DNP3


class Broken(Packet):
    name = "broken"

    def do_dissect(self, s: bytes) -> bytes:
        raise ValueError("dissector bug")


def test_repeated_payloads_are_dissected_once() -> None:
    cache = DissectCache(4)
    raw = bytes(DNP3())
    first = cache.get(DNP3, raw)
    assert cache.get(DNP3, raw) is first
    assert (cache.hits, cache.misses) == (1, 1)


def test_bounded_oldest_first() -> None:
    cache = DissectCache(2)
    for i in range(5):
        cache.get(DNP3, bytes(DNP3(destination=i)))
    assert len(cache) == 2


def test_failures_are_counted_and_cached_as_none() -> None:
    cache = DissectCache(4)
    assert cache.get(Broken, b"x") is None
    assert cache.get(Broken, b"x") is None
    assert (cache.errors, cache.hits) == (1, 1)
