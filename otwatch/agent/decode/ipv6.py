"""IPv6 for the header decoder: the fixed header and the walk over extension headers to the
upper layer (kept apart from the IPv4/Ethernet fast path in :mod:`headers`)."""

from __future__ import annotations

import socket
import struct

_MAX_IPV6_EXT = 8
_IPV6_EXT_PLAIN = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options
_IP_CACHE_MAX = 65_536

_ip6 = struct.Struct("!IHBB16s16s").unpack_from
_u16 = struct.Struct("!H").unpack_from
_ntop = socket.inet_ntop

# A small bounded cache of address text (emptied when full), as for IPv4 in :mod:`headers`.
_ip6_text: dict[bytes, str] = {}


def _ip6_str(raw: bytes) -> str:
    text = _ip6_text.get(raw)
    if text is None:
        text = _ntop(socket.AF_INET6, raw)
        if len(_ip6_text) >= _IP_CACHE_MAX:
            _ip6_text.clear()
        _ip6_text[raw] = text
    return text


def _ipv6(
    data: bytes, off: int, n: int, wire_len: int
) -> tuple[str | None, str | None, int | None, int | None, int, int, bool, bool, str | None]:
    """IPv6 header and extension headers.

    Returns ``(src, dst, proto, hlim, l4_offset, end, non_first_fragment, fragment, malformed)``;
    l4_offset is -1 when the upper layer cannot be located.
    """
    if n - off < 40:
        return None, None, None, None, -1, n, False, False, "ipv6: header shorter than 40 bytes"
    vtcfl, plen, nh, hlim, src, dst = _ip6(data, off)
    if vtcfl >> 28 != 6:
        return None, None, None, None, -1, n, False, False, f"ipv6: version {vtcfl >> 28}"
    src_ip, dst_ip = _ip6_str(src), _ip6_str(dst)
    p = off + 40
    end = p + plen
    malformed = None
    if plen == 0:  # jumbogram, or a segmentation-offload frame captured on the sender
        end = n
    elif end > n:
        end = n
        if n == wire_len:
            malformed = f"ipv6: payload length {plen} beyond packet"
    l4 = -1
    nonfirst = fragment = False
    for _ in range(_MAX_IPV6_EXT):
        if nh in _IPV6_EXT_PLAIN or nh == 51:
            if p + 8 > end:
                malformed = "ipv6: extension header beyond packet"
                break
            size = (data[p + 1] + 2) * 4 if nh == 51 else (data[p + 1] + 1) * 8
            nh = data[p]
            p += size
            if p > end:
                malformed = "ipv6: extension header beyond packet"
                break
        elif nh == 44:
            if p + 8 > end:
                malformed = "ipv6: fragment header beyond packet"
                break
            offflags = _u16(data, p + 2)[0]
            nh = data[p]
            p += 8
            fragment = True
            if offflags >> 3:  # fragment offset: the upper-layer header is in the first one
                nonfirst = True
                l4 = p
                break
        else:
            l4 = p
            break
    else:
        malformed = "ipv6: too many extension headers"
    return src_ip, dst_ip, nh, hlim, l4, end, nonfirst, fragment, malformed
