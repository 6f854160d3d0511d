"""Writing classic PCAP: the file header and one record."""

from __future__ import annotations

import struct
from typing import BinaryIO

from otwatch.agent.capture.pcapformat import _NS, _PCAP_NS, _PCAP_US, MAX_CAPLEN

_WRITE_HDR = struct.Struct("<IHHiIII")


_WRITE_REC = struct.Struct("<IIII")


def file_header(linktype: int, nanosecond: bool, snaplen: int = MAX_CAPLEN) -> bytes:
    """A little-endian classic pcap file header."""
    return _WRITE_HDR.pack(_PCAP_NS if nanosecond else _PCAP_US, 2, 4, 0, 0, snaplen, linktype)


def write_pcap_header(
    f: BinaryIO, linktype: int, snaplen: int = MAX_CAPLEN, nanosecond: bool = True
) -> None:
    """Write a little-endian classic pcap file header to ``f``."""
    f.write(file_header(linktype, nanosecond, snaplen))


def pcap_record(ts_ns: int, wire_len: int, data: bytes, nanosecond: bool = True) -> bytes:
    """One little-endian pcap record (header + data) for a file written with that resolution."""
    sec, frac = divmod(ts_ns, _NS)
    if not nanosecond:
        frac //= 1000
    return _WRITE_REC.pack(sec, frac, len(data), wire_len) + data
