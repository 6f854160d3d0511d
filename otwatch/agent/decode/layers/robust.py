"""A Scapy packet base class whose dissection never raises on truncated or garbage input.

Scapy swallows a failing payload dissector (it becomes ``Raw``) unless
``conf.debug_dissector`` is set, as our tests do; a layer's own field that runs out of bytes
still raises there. ``RobustPacket`` keeps the fields it could read, marks itself
``truncated`` and keeps the input bytes, so a rebuild gives back exactly what was captured.
"""

from __future__ import annotations

from scapy.packet import Packet

__all__ = ["RobustPacket"]


class RobustPacket(Packet):
    __slots__ = ["truncated"]

    def __init__(self, *args, **kwargs) -> None:
        self.truncated = False
        super().__init__(*args, **kwargs)

    def do_dissect(self, s: bytes) -> bytes:
        try:
            return super().do_dissect(s)
        except Exception:  # a field ran out of bytes or met an impossible value
            self.truncated = True
            self.raw_packet_cache = s
            self.raw_packet_cache_fields = {}
            self.explicit = 1
            return b""
