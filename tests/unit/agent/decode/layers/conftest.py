"""Scapy layer tests run with ``conf.debug_dissector`` on, so a failing payload dissector
raises instead of silently becoming ``Raw`` (as Scapy's own regression tests do)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from scapy.config import conf

from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.decode.headers import decode


@pytest.fixture(autouse=True)
def debug_dissector() -> Iterator[None]:
    old = conf.debug_dissector
    conf.debug_dissector = True
    yield
    conf.debug_dissector = old


@pytest.fixture
def corpus(pcaps: Path) -> Callable[[str, int], list[tuple[bytes, bytes]]]:
    """``corpus(name, port)``: ``(frame, transport payload)`` of the frames of a corpus
    capture to or from ``port`` that carry a payload."""

    def frames(name: str, port: int) -> list[tuple[bytes, bytes]]:
        out = []
        with open_capture(pcaps / name) as capture:
            for ts, wire_len, linktype, data in capture:
                rec = decode(ts, wire_len, linktype, data)
                if rec.payload and port in (rec.sport, rec.dport):
                    out.append((data, rec.payload))
        return out

    return frames
