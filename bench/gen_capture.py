"""Generate large, realistic benchmark captures fast (templates patched per packet, no Scapy).

Usage: ``python bench/gen_capture.py OUT --packets N [--clients C] [--seed S]``
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import sys
import time

from otwatch.agent.capture.pcapfile import pcap_record, write_pcap_header

__all__ = ["SERVER_IP", "SERVER_PORT", "START_NS", "main", "modbus_polling"]

START_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
SERVER_IP = "198.51.100.10"
SERVER_PORT = 502
_SERVER_MAC = bytes.fromhex("0200c633640a")
_UNIT_ID = 1
_WRITE_SHARE = 0.03  # fraction of polls that are an FC6 write instead of a read
_BATCH = 8192

# Offsets inside an untagged Ethernet/IPv4(20)/TCP(20) frame.
_SEQ_ACK_AT = 14 + 20 + 4
_TID_AT = 14 + 20 + 20
_PDU_AT = _TID_AT + 7
_seq_ack = struct.Struct("!II")
_u16 = struct.Struct("!H")


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(
    src_mac: bytes, dst_mac: bytes, src: str, dst: str, sport: int, dport: int, pdu: bytes
) -> bytearray:
    """An Ethernet/IPv4/TCP(PSH,ACK)/Modbus frame; seq, ack and transaction id patched later."""
    adu = struct.pack("!HHHB", 0, 0, len(pdu) + 1, _UNIT_ID) + pdu
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, 0x18, 64240, 0, 0)
    ip = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(tcp) + len(adu),
            0,
            0x4000,  # DF; constant id 0 keeps the precomputed IP checksum valid
            64,
            6,
            0,
            bytes(map(int, src.split("."))),
            bytes(map(int, dst.split("."))),
        )
    )
    ip[10:12] = _u16.pack(_checksum(bytes(ip)))
    return bytearray(dst_mac + src_mac + b"\x08\x00" + ip + tcp + adu)


class _Client:
    """One polling client: its frame templates and TCP sequence state (both directions)."""

    def __init__(self, index: int, rng: random.Random) -> None:
        mac = bytes.fromhex("0200c00002") + bytes([index + 1])
        ip = f"192.0.2.{index + 11}"
        port = 49152 + rng.randrange(16000)
        hold_addr, hold_qty = 100 * index, 10
        input_addr, input_qty = 30000 + 8 * index, 8
        write_addr = 200 + index

        def pair(req: bytes, resp: bytes) -> tuple[bytearray, bytearray]:
            return (
                _frame(mac, _SERVER_MAC, ip, SERVER_IP, port, SERVER_PORT, req),
                _frame(_SERVER_MAC, mac, SERVER_IP, ip, SERVER_PORT, port, resp),
            )

        values = bytes(rng.randrange(256) for _ in range(2 * max(hold_qty, input_qty)))
        self.reads = [
            pair(
                struct.pack("!BHH", 3, hold_addr, hold_qty),
                struct.pack("!BB", 3, 2 * hold_qty) + values[: 2 * hold_qty],
            ),
            pair(
                struct.pack("!BHH", 4, input_addr, input_qty),
                struct.pack("!BB", 4, 2 * input_qty) + values[: 2 * input_qty],
            ),
        ]
        write = struct.pack("!BHH", 6, write_addr, 0)
        self.write = pair(write, write)  # a write-single-register response echoes the request
        self.seq = rng.randrange(1 << 32)  # client -> server
        self.ack = rng.randrange(1 << 32)  # server -> client
        self.tid = rng.randrange(1 << 16)
        self.polls = 0


def modbus_polling(
    path: str | os.PathLike[str], packets: int = 1_000_000, clients: int = 5, seed: int = 1
) -> int:
    """Write a Modbus/TCP polling capture (ns pcap, Ethernet) and return the packet count.

    ``clients`` hosts in 192.0.2.0/24 poll 198.51.100.10:502 with FC3 (read holding
    registers) and FC4 (read input registers) and occasionally write with FC6; every request is
    followed by its response. Timestamps start at 2026-01-01T00:00:00Z and advance ~1 ms per
    packet. The capture starts mid-session (no handshake); TCP checksums are not computed.
    """
    if not 1 <= clients <= 200:
        raise ValueError("clients must be between 1 and 200")
    rng = random.Random(seed)
    hosts = [_Client(i, rng) for i in range(clients)]
    pack_seq_ack, pack_u16 = _seq_ack.pack_into, _u16.pack_into
    rand, randrange = rng.random, rng.randrange
    ts = START_NS
    written = 0
    with open(path, "wb") as f:
        write_pcap_header(f, 1, nanosecond=True)
        out: list[bytes] = []
        while written < packets:
            c = hosts[randrange(clients)]
            if rand() < _WRITE_SHARE:
                req, resp = c.write
                pack_u16(req, _PDU_AT + 3, c.polls & 0xFFFF)
                pack_u16(resp, _PDU_AT + 3, c.polls & 0xFFFF)
            else:
                req, resp = c.reads[c.polls & 1]
                pack_u16(resp, _PDU_AT + 2, c.polls & 0xFFFF)  # first register value moves
            c.polls += 1
            c.tid = (c.tid + 1) & 0xFFFF
            for frame, outgoing in ((req, True), (resp, False)):
                if written == packets:
                    break
                size = len(frame) - _TID_AT
                if outgoing:
                    pack_seq_ack(frame, _SEQ_ACK_AT, c.seq, c.ack)
                    c.seq = (c.seq + size) & 0xFFFFFFFF
                else:
                    pack_seq_ack(frame, _SEQ_ACK_AT, c.ack, c.seq)
                    c.ack = (c.ack + size) & 0xFFFFFFFF
                pack_u16(frame, _TID_AT, c.tid)
                out.append(pcap_record(ts, len(frame), bytes(frame)))
                ts += randrange(800_000, 1_200_000)
                written += 1
            if len(out) >= _BATCH:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a Modbus/TCP polling benchmark capture.")
    parser.add_argument("out", help="output pcap file")
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    count = modbus_polling(args.out, args.packets, args.clients, args.seed)
    elapsed = time.perf_counter() - started
    size = os.path.getsize(args.out) / 1e6
    print(f"wrote {count} packets ({size:.1f} MB) to {args.out} in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
