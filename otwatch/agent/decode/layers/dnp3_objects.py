"""DNP3 object headers (IEEE 1815 clause 4.4.3): read the headers of a request and check
that its qualifiers, ranges and object sizes can be right. Pure ``struct`` helpers for the
engine; nothing here raises on malformed input."""

from __future__ import annotations

import struct

__all__ = [
    "DATA_FUNCTIONS",
    "HEADER_ONLY_FUNCTIONS",
    "OBJECT_SIZES",
    "check_objects",
    "object_headers",
]

#: Request functions whose object headers carry no object data (clause 4.4).
HEADER_ONLY_FUNCTIONS = frozenset({1, 7, 8, 9, 10, 20, 21, 22, 23, 24})
#: Request functions whose objects carry data, sized by ``OBJECT_SIZES``.
DATA_FUNCTIONS = frozenset({2, 3, 4, 5, 6, 11, 12})
#: Octets per object of the groups/variations that requests write or control.
OBJECT_SIZES = {
    (12, 1): 11, (12, 2): 11,
    (41, 1): 5, (41, 2): 3, (41, 3): 5, (41, 4): 9,
    (34, 1): 2, (34, 2): 4, (34, 3): 4,
    (50, 1): 6, (50, 2): 10, (50, 3): 6, (50, 4): 11,
    (51, 1): 6, (51, 2): 6, (52, 1): 2, (52, 2): 2,
}  # fmt: skip
_RANGE = {0: 1, 1: 2, 2: 4}  # start/stop octets
_ADDRESS = {3: 1, 4: 2, 5: 4}  # one object at an absolute address
_COUNT = {7: 1, 8: 2, 9: 4}
_PREFIX = {0: 0, 1: 1, 2: 2, 3: 4, 4: 1, 5: 2, 6: 4}
_ulong = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I")}


def _number(data: bytes, pos: int, size: int) -> int:
    return _ulong[size].unpack_from(data, pos)[0]


def object_headers(objects: bytes, limit: int = 16) -> list[tuple[int, int, int]]:
    """``(group, variation, qualifier)`` of the object headers of a header-only request
    (READ, freeze, enable/disable unsolicited...); stops at the first it cannot size."""
    out: list[tuple[int, int, int]] = []
    check_objects(1, objects, out, limit)
    return out


def check_objects(
    function: int,
    objects: bytes,
    headers: list[tuple[int, int, int]] | None = None,
    limit: int = 64,
) -> str | None:
    """A reason when the object headers of a request cannot be right, else None.

    Checks the qualifier code (reserved prefix or range codes), ranges whose stop precedes
    their start, and that the objects fill the fragment exactly where their size is known.
    Stops without a verdict at an object it cannot size (files, variable-size objects).
    """
    if function not in HEADER_ONLY_FUNCTIONS and function not in DATA_FUNCTIONS:
        return None
    pos, size = 0, len(objects)
    data_request = function in DATA_FUNCTIONS
    while pos < size:
        if len(headers or ()) >= limit:
            return None
        if pos + 3 > size:
            return f"truncated object header at octet {pos}"
        group, variation, qualifier = objects[pos], objects[pos + 1], objects[pos + 2]
        if headers is not None:
            headers.append((group, variation, qualifier))
        pos += 3
        prefix_code, range_code = (qualifier >> 4) & 0x07, qualifier & 0x0F
        prefix = _PREFIX.get(prefix_code)
        if prefix is None or qualifier & 0x80 or range_code in (0xA, 0xC, 0xD, 0xE, 0xF):
            return f"reserved qualifier 0x{qualifier:02x} for object g{group}v{variation}"
        if range_code == 6:
            count = 0
        elif range_code == 0xB:
            return None  # variable-format objects: no verdict
        else:
            octets = _RANGE.get(range_code) or _ADDRESS.get(range_code) or _COUNT[range_code]
            need = 2 * octets if range_code in _RANGE else octets
            if pos + need > size:
                return f"truncated range of object g{group}v{variation}"
            if range_code in _RANGE:
                start, stop = _number(objects, pos, octets), _number(objects, pos + octets, octets)
                if stop < start:
                    return f"range stop {stop} before start {start} (g{group}v{variation})"
                count = stop - start + 1
            else:
                count = 1 if range_code in _ADDRESS else _number(objects, pos, octets)
            pos += need
        if not data_request:
            object_size = 0
        elif group == 80 and variation == 1:  # internal indications, packed bits
            pos += (count + 7) // 8
            if pos > size:
                return "object data shorter than its header announces (g80v1)"
            continue
        else:
            object_size = OBJECT_SIZES.get((group, variation), -1)
            if object_size < 0 and prefix_code < 4:
                return None  # unknown size: no verdict
        if prefix_code >= 4:  # each object is preceded by its own size
            for _ in range(count):
                if pos + prefix > size:
                    return f"object data shorter than its header announces (g{group}v{variation})"
                pos += prefix + (_number(objects, pos, prefix) if data_request else 0)
        else:
            pos += count * (prefix + object_size)
        if pos > size:
            return f"object data shorter than its header announces (g{group}v{variation})"
    return None
