"""What the capture-file modules share: the frame tuple, the largest frame, the PCAP magic
numbers, the pcapng block types and the integer codecs of both byte orders."""

from __future__ import annotations

import struct

Frame = tuple[int, int, int, bytes]
"""``(ts_ns, wire_len, linktype, data)``; ``len(data)`` is the captured length."""

MAX_CAPLEN = 262_144
"""Largest captured length accepted for one frame (libpcap's own limit for Ethernet)."""

_NS = 1_000_000_000

_PCAP_US = 0xA1B2C3D4
_PCAP_NS = 0xA1B23C4D

_IDB, _OPB, _SPB, _EPB = 1, 2, 3, 6

_U32 = {"<": struct.Struct("<I"), ">": struct.Struct(">I")}
_I64 = {"<": struct.Struct("<q"), ">": struct.Struct(">q")}
