"""A bounded cache of Scapy dissections, for engines that inspect some packets deeply.

Polling repeats identical payloads; the cache makes the second dissection of the same bytes
free. It never raises: a dissector failure is counted and cached as ``None``.
"""

from __future__ import annotations

from scapy.packet import Packet

__all__ = ["DissectCache"]


class DissectCache:
    """``get(cls, data)`` → ``cls(data)`` or None, remembering up to ``max_entries``."""

    __slots__ = ("_entries", "errors", "hits", "max_entries", "misses")

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[type, bytes], Packet | None] = {}
        self.hits = self.misses = self.errors = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, cls: type[Packet], data: bytes) -> Packet | None:
        key = (cls, data)
        entries = self._entries
        if key in entries:
            self.hits += 1
            return entries[key]
        self.misses += 1
        try:
            packet: Packet | None = cls(data)
        except Exception:  # a dissector bug must not stop the engine
            self.errors += 1
            packet = None
        if len(entries) >= self.max_entries:
            del entries[next(iter(entries))]
        entries[key] = packet
        return packet
