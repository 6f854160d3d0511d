"""Generate large, realistic benchmark captures fast: frames are built once (with Scapy where
a protocol layer helps) and patched per packet, never dissected or built per packet.

- ``modbus_polling``: Modbus/TCP clients polling one server.
- ``mixed_plant``: a plant's normal traffic, OT polling in several protocols plus IT services.

Usage: ``python bench/gen_capture.py OUT --packets N [--mixed] [--clients C] [--seed S]``
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import struct
import sys
import time

from otwatch.agent.capture.pcapwrite import pcap_record, write_pcap_header

__all__ = ["SERVER_IP", "SERVER_PORT", "START_NS", "main", "mixed_plant", "modbus_polling"]

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


def _ipv4_frame(
    src_mac: bytes, dst_mac: bytes, src: bytes, dst: bytes, proto: int, l4: bytes, more: int = 0
) -> bytearray:
    """Ethernet/IPv4 around ``l4`` (``more`` payload bytes to follow), IP checksum computed
    (DF, id 0, TTL 64)."""
    ip = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(l4) + more,
            0,
            0x4000,  # DF; constant id 0 keeps the precomputed IP checksum valid
            64,
            proto,
            0,
            src,
            dst,
        )
    )
    ip[10:12] = _u16.pack(_checksum(bytes(ip)))
    return bytearray(dst_mac + src_mac + b"\x08\x00" + ip + l4)


def _ip(text: str) -> bytes:
    return bytes(map(int, text.split(".")))


def _frame(
    src_mac: bytes, dst_mac: bytes, src: str, dst: str, sport: int, dport: int, pdu: bytes
) -> bytearray:
    """An Ethernet/IPv4/TCP(PSH,ACK)/Modbus frame; seq, ack and transaction id patched later."""
    adu = struct.pack("!HHHB", 0, 0, len(pdu) + 1, _UNIT_ID) + pdu
    return _ipv4_frame(src_mac, dst_mac, _ip(src), _ip(dst), 6, _tcp_header(sport, dport) + adu)


def _tcp_header(sport: int, dport: int) -> bytes:
    """TCP header, PSH+ACK, seq/ack 0 (patched per packet), checksum not computed."""
    return struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, 0x18, 64240, 0, 0)


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


# -- Mixed-protocol plant ----------------------------------------------------------------------

_MS = 1_000_000
_S = 1_000_000_000
_NTP_EPOCH = 2_208_988_800  # seconds from 1900 (NTP era 0) to 1970
_OUI = {"siemens": "001b1b", "rockwell": "0000bc", "schneider": "0080f4", "sel": "0030a7"}
_le_hh = struct.Struct("<HH")
_Packets = list[tuple[int, bytes]]


class _Host:
    """A plant device: one address and one MAC, whatever protocol it speaks."""

    __slots__ = ("addr", "ip", "mac")

    def __init__(self, ip: str, vendor: str | None = None) -> None:
        self.ip, self.addr = ip, _ip(ip)
        oui = bytes.fromhex(_OUI[vendor]) + self.addr[1:] if vendor else None
        self.mac = oui or b"\x02\x00" + self.addr  # else locally administered


class _Flow:
    """A TCP connection seen mid-session (no handshake), or a UDP conversation. Headers are
    built once per direction and payload length; TCP seq/ack are patched per packet. TCP and
    UDP checksums are not computed (UDP: 0, "none")."""

    __slots__ = ("_headers", "client", "dport", "seq", "server", "sport", "tcp")

    def __init__(
        self, client: _Host, server: _Host, sport: int, dport: int, tcp: bool, rng: random.Random
    ) -> None:
        self.client, self.server, self.sport, self.dport, self.tcp = (
            client, server, sport, dport, tcp,
        )  # fmt: skip
        self.seq = [rng.randrange(1 << 32), rng.randrange(1 << 32)]  # client->server, back
        self._headers: dict[tuple[bool, int], bytearray] = {}

    def frame(self, payload: bytes, from_client: bool = True) -> bytes:
        key = (from_client, len(payload))
        hdr = self._headers.get(key)
        if hdr is None:
            hdr = self._headers[key] = self._header(from_client, len(payload))
        if self.tcp:
            i = 0 if from_client else 1
            seq = self.seq[i]
            _seq_ack.pack_into(hdr, _SEQ_ACK_AT, seq, self.seq[1 - i])
            self.seq[i] = (seq + len(payload)) & 0xFFFFFFFF
        return bytes(hdr) + payload

    def _header(self, from_client: bool, size: int) -> bytearray:
        a, b = (self.client, self.server) if from_client else (self.server, self.client)
        sport, dport = (self.sport, self.dport) if from_client else (self.dport, self.sport)
        if self.tcp:
            return _ipv4_frame(a.mac, b.mac, a.addr, b.addr, 6, _tcp_header(sport, dport), size)
        udp = struct.pack("!HHHH", sport, dport, 8 + size, 0)
        return _ipv4_frame(a.mac, b.mac, a.addr, b.addr, 17, udp, size)


class _Channel:
    """Something the plant does every ``period_ns`` (+- ``jitter``): one request and its
    response (or a short exchange), the first packet at the tick."""

    period_ns = 100 * _MS
    jitter = 0.03
    reply_ms = (1, 8)  # response delay range: a PLC answers in a few ms

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.n = 0  # exchanges so far

    def after(self, ts: int) -> int:
        return ts + self.rng.randrange(self.reply_ms[0] * _MS, self.reply_ms[1] * _MS)

    def exchange(self, ts: int) -> _Packets:
        raise NotImplementedError


class _ModbusPoll(_Channel):
    """FC3 and FC4 reads in turn, every 97th poll an FC6 setpoint write."""

    def __init__(self, client: _Host, plc: _Host, rng: random.Random) -> None:
        super().__init__(rng)
        self.flow = _Flow(client, plc, 49152 + rng.randrange(16000), 502, True, rng)
        self.tid = rng.randrange(1 << 16)
        self.reads = [struct.pack("!BHH", 3, 0, 10), struct.pack("!BHH", 4, 0, 8)]
        values = bytes(rng.randrange(256) for _ in range(20))
        self.replies = [(b"\x03\x14", values[2:]), (b"\x04\x10", values[2:16])]

    def exchange(self, ts: int) -> _Packets:
        n, self.n = self.n, self.n + 1
        self.tid = tid = (self.tid + 1) & 0xFFFF
        if n % 97 == 13:
            req = resp = struct.pack("!BHH", 6, 20, n & 0xFFFF)  # the response echoes it
        else:
            req = self.reads[n & 1]
            head, rest = self.replies[n & 1]
            resp = head + _u16.pack(n & 0xFFFF) + rest  # the first register moves
        flow = self.flow
        return [
            (ts, flow.frame(struct.pack("!HHHB", tid, 0, len(req) + 1, 1) + req)),
            (
                self.after(ts),
                flow.frame(struct.pack("!HHHB", tid, 0, len(resp) + 1, 1) + resp, False),
            ),
        ]


def _dnp3(master: bool, outstation: int, seq: int, app: bytes) -> bytes:
    """One DNP3 link frame (unconfirmed user data) with its transport header and CRCs."""
    from scapy.packet import Raw

    from otwatch.agent.decode.layers.dnp3 import DNP3, DNP3Transport

    src, dst = (1, outstation) if master else (outstation, 1)
    frame = DNP3(dir=int(master), prm=1, function=4, destination=dst, source=src)
    return bytes(frame / DNP3Transport(fin=1, fir=1, seq=seq) / Raw(app))


class _Dnp3Poll(_Channel):
    """Class 1/2/3 event polls (null response); every 100th an integrity (class 0) poll
    answered with binary and analog inputs. Transport and application sequence numbers
    advance; frames are prebuilt for the 64 transport sequence numbers, CRCs included."""

    def __init__(self, master: _Host, outstation: _Host, address: int, rng: random.Random) -> None:
        super().__init__(rng)
        self.flow = _Flow(master, outstation, 49152 + rng.randrange(16000), 20000, True, rng)
        events = bytes.fromhex("3c02063c03063c0406")  # g60v2..v4, all objects
        inputs = (
            bytes.fromhex("01020000078181810101010101")  # g1v2, points 0-7 with flags
            + bytes.fromhex("1e01000003")  # g30v1, points 0-3: flag + int32
            + b"".join(b"\x01" + struct.pack("<i", 1000 * p + address) for p in range(4))
        )
        self.polls = []
        for request, reply in ((events, b""), (events + bytes.fromhex("3c0106"), inputs)):
            self.polls.append([
                (
                    _dnp3(True, address, k, bytes([0xC0 | k % 16, 1]) + request),
                    _dnp3(False, address, k, bytes([0xC0 | k % 16, 129, 0, 0]) + reply),
                )
                for k in range(64)
            ])  # fmt: skip

    def exchange(self, ts: int) -> _Packets:
        n, self.n = self.n, self.n + 1
        req, resp = self.polls[n % 100 == 0][n % 64]
        return [(ts, self.flow.frame(req)), (self.after(ts), self.flow.frame(resp, False))]


class _S7Read(_Channel):
    """S7comm read var of two data blocks in turn; the PDU reference advances."""

    def __init__(self, hmi: _Host, plc: _Host, rng: random.Random) -> None:
        from otwatch.agent.decode.layers import s7comm as s7

        super().__init__(rng)
        self.flow = _Flow(hmi, plc, 49152 + rng.randrange(16000), 102, True, rng)
        self.ref = rng.randrange(1, 1 << 16)
        self.jobs = []
        for db, size in ((1, 16), (2, 8)):
            item = s7.S7VarItem(transport_size=2, count=size, db_number=db, area=0x84, address=0)
            job = s7.S7(rosctr=1, parameter=s7.S7VarParameter(items=[item]))
            data = (
                b"\xff\x04" + _u16.pack(8 * size) + bytes(rng.randrange(256) for _ in range(size))
            )
            ack = s7.S7(rosctr=3, parameter=s7.S7VarAckParameter(item_count=1), data=data)
            self.jobs.append(
                (bytes(s7.TPKT(cotp=s7.COTP() / job)), bytes(s7.TPKT(cotp=s7.COTP() / ack)))
            )

    def exchange(self, ts: int) -> _Packets:
        n, self.n = self.n, self.n + 1
        self.ref = ref = self.ref % 0xFFFF + 1
        req, resp = self.jobs[n & 1]
        at = 4 + 3 + 4  # TPKT, COTP DT, then the S7 header's PDU reference
        req = req[:at] + _u16.pack(ref) + req[at + 2 :]
        resp = resp[:at] + _u16.pack(ref) + resp[at + 2 :]
        return [(ts, self.flow.frame(req)), (self.after(ts), self.flow.frame(resp, False))]


def _enip(command: int, session: int, context: int, body: bytes) -> bytes:
    """EtherNet/IP encapsulation header (little-endian) + body."""
    return struct.pack("<HHIIQI", command, len(body), session, 0, context, 0) + body


class _EnipTagRead(_Channel):
    """CIP Read Tag (service 0x4C) of two REAL tags in turn over SendRRData, in a registered
    session; the sender context advances and the reply echoes it."""

    def __init__(self, client: _Host, plc: _Host, rng: random.Random) -> None:
        super().__init__(rng)
        self.flow = _Flow(client, plc, 49152 + rng.randrange(16000), 44818, True, rng)
        self.session = rng.randrange(1, 1 << 32)
        self.context = rng.randrange(1 << 48)
        self.requests = []
        for tag in (b"Line1_Speed", b"Tank2_Level"):
            segment = bytes([0x91, len(tag)]) + tag + b"\x00" * (len(tag) & 1)
            self.requests.append(bytes([0x4C, len(segment) // 2]) + segment + b"\x01\x00")

    @staticmethod
    def _rr(cip: bytes) -> bytes:
        """SendRRData body: interface 0, timeout 0, a null address item and unconnected data."""
        return struct.pack("<IHHHHHH", 0, 0, 2, 0, 0, 0xB2, len(cip)) + cip

    def exchange(self, ts: int) -> _Packets:
        n, self.n = self.n, self.n + 1
        self.context = ctx = self.context + 1
        reply = b"\xcc\x00\x00\x00\xca\x00" + struct.pack("<f", 40 + (n % 200) / 10)
        return [
            (ts, self.flow.frame(_enip(0x6F, self.session, ctx, self._rr(self.requests[n & 1])))),
            (
                self.after(ts),
                self.flow.frame(_enip(0x6F, self.session, ctx, self._rr(reply)), False),
            ),
        ]


class _EnipListIdentity(_Channel):
    """An engineering station asks a PLC for its identity (UDP 44818) every 5 s."""

    period_ns = 5 * _S

    def __init__(self, client: _Host, plc: _Host, rng: random.Random) -> None:
        super().__init__(rng)
        self.flow = _Flow(client, plc, 49152 + rng.randrange(16000), 44818, False, rng)
        name = b"1769-L33ER/A LOGIX5333ER"
        identity = (
            struct.pack("<H", 1)  # encapsulation protocol version
            + struct.pack(">HH4s8x", 2, 44818, plc.addr)  # socket address, big-endian
            + struct.pack("<HHHBBHI", 1, 14, 103, 33, 11, 0x0030, rng.randrange(1 << 32))
            + bytes([len(name)]) + name + b"\x03"
        )  # fmt: skip
        self.reply = struct.pack("<HHH", 1, 0x0C, len(identity)) + identity

    def exchange(self, ts: int) -> _Packets:
        self.n += 1
        return [
            (ts, self.flow.frame(_enip(0x63, 0, self.n, b""))),
            (self.after(ts), self.flow.frame(_enip(0x63, 0, self.n, self.reply), False)),
        ]


class _Iec104(_Channel):
    """An RTU reports a measured value spontaneously (M_ME_NC_1, cause 3) and the controlling
    station acknowledges it with an S-frame; every 300th tick a general interrogation
    (C_IC_NA_1 act, actcon, the values with cause 20, actterm). Send/receive sequence numbers
    advance in both directions."""

    def __init__(self, master: _Host, rtu: _Host, common_address: int, rng: random.Random) -> None:
        super().__init__(rng)
        self.flow = _Flow(master, rtu, 49152 + rng.randrange(16000), 2404, True, rng)
        self.ca = common_address
        self.sent = [rng.randrange(1 << 15), rng.randrange(1 << 15)]  # master, RTU
        self.ioas = [1001, 1002, 1003, 1004]

    def _i_frame(self, from_master: bool, asdu: bytes) -> bytes:
        i = 0 if from_master else 1
        ns, nr = self.sent[i], self.sent[1 - i]
        self.sent[i] = (ns + 1) & 0x7FFF
        return b"\x68" + bytes([4 + len(asdu)]) + _le_hh.pack(ns << 1, nr << 1) + asdu

    def _asdu(self, type_id: int, cause: int, objects: list[bytes]) -> bytes:
        return (
            bytes([type_id, len(objects), cause, 0])
            + struct.pack("<H", self.ca)
            + b"".join(objects)
        )

    def _value(self, ioa: int, value: float) -> bytes:
        return struct.pack("<I", ioa)[:3] + struct.pack("<f", value) + b"\x00"

    def exchange(self, ts: int) -> _Packets:
        n, self.n = self.n, self.n + 1
        flow, out = self.flow, []
        if n % 300 == 0:
            gi = [b"\x00\x00\x00\x14"]  # IOA 0, QOI 20 (station interrogation)
            out.append((ts, flow.frame(self._i_frame(True, self._asdu(100, 6, gi)))))
            ts = self.after(ts)
            out.append((ts, flow.frame(self._i_frame(False, self._asdu(100, 7, gi)), False)))
            values = [self._value(ioa, ioa / 10) for ioa in self.ioas]
            ts += self.rng.randrange(_MS, 3 * _MS)
            out.append((ts, flow.frame(self._i_frame(False, self._asdu(13, 20, values)), False)))
            ts += self.rng.randrange(_MS, 3 * _MS)
            out.append((ts, flow.frame(self._i_frame(False, self._asdu(100, 10, gi)), False)))
        else:
            value = self._value(self.ioas[n % 4], (n % 1000) / 10)
            out.append((ts, flow.frame(self._i_frame(False, self._asdu(13, 3, [value])), False)))
        ack = b"\x68\x04\x01\x00" + struct.pack("<H", self.sent[1] << 1)  # S-frame: N(R)
        out.append((self.after(out[-1][0]), flow.frame(ack)))
        return out


class _BacnetRead(_Channel):
    """A building-management station reads present-value of three objects in turn
    (ReadProperty, confirmed); the invoke id advances and the ComplexACK echoes it."""

    period_ns = 200 * _MS

    def __init__(self, station: _Host, controller: _Host, rng: random.Random) -> None:
        from scapy.packet import Raw

        from otwatch.agent.decode.layers.bacnet import (
            BVLC,
            NPDU,
            BACnetComplexACK,
            BACnetConfirmedRequest,
        )

        super().__init__(rng)
        self.flow = _Flow(station, controller, 47808, 47808, False, rng)
        self.invoke = rng.randrange(256)
        self.reads = []
        for obj_type, instance in ((0, 1), (0, 2), (2, 1)):  # analog-input 1, 2; analog-value 1
            params = b"\x0c" + struct.pack(">I", obj_type << 22 | instance) + b"\x19\x55"
            req = BVLC() / NPDU(expecting_reply=1) / BACnetConfirmedRequest() / Raw(params)
            value = b"\x3e\x44" + bytes(4) + b"\x3f"  # opening tag 3, REAL, closing tag 3
            ack = BVLC() / NPDU() / BACnetComplexACK() / Raw(params + value)
            self.reads.append((bytes(req), bytes(ack)))

    def exchange(self, ts: int) -> _Packets:
        n, self.n = self.n, self.n + 1
        self.invoke = inv = (self.invoke + 1) & 0xFF
        req, ack = self.reads[n % 3]
        req = req[:8] + bytes([inv]) + req[9:]  # BVLC 4, NPDU 2, type, max APDU, invoke id
        value = struct.pack(">f", 20 + (n % 100) / 10)
        resp = ack[:7] + bytes([inv]) + ack[8:-5] + value + b"\x3f"
        return [(ts, self.flow.frame(req)), (self.after(ts), self.flow.frame(resp, False))]


class _DnsLookup(_Channel):
    """A host resolves plant names in turn, each query from a new source port."""

    period_ns = 1 * _S
    reply_ms = (1, 3)

    def __init__(self, client: _Host, server: _Host, names: dict[str, str], rng: random.Random):
        from scapy.layers.dns import DNS, DNSQR, DNSRR

        super().__init__(rng)
        self.client, self.server = client, server
        self.lookups = []
        for name, address in names.items():
            query = DNS(id=0, rd=1, qd=DNSQR(qname=name))
            answer = DNSRR(rrname=name, type="A", ttl=300, rdata=address)
            reply = DNS(id=0, qr=1, aa=1, rd=1, ra=1, qd=DNSQR(qname=name), an=answer)
            self.lookups.append((bytes(query)[2:], bytes(reply)[2:]))

    def exchange(self, ts: int) -> _Packets:
        n, self.n = self.n, self.n + 1
        rng = self.rng
        flow = _Flow(self.client, self.server, rng.randrange(49152, 65536), 53, False, rng)
        txid = _u16.pack(rng.randrange(1 << 16))
        query, reply = self.lookups[n % len(self.lookups)]
        return [(ts, flow.frame(txid + query)), (self.after(ts), flow.frame(txid + reply, False))]


class _HttpGet(_Channel):
    """An HMI fetches JSON from the historian's web API over a kept-alive connection."""

    period_ns = 1 * _S
    reply_ms = (2, 10)

    def __init__(self, client: _Host, server: _Host, rng: random.Random) -> None:
        super().__init__(rng)
        self.flow = _Flow(client, server, 49152 + rng.randrange(16000), 80, True, rng)
        self.pages = []
        for path, body in (
            ("/api/v1/trends?tag=FT101&span=60", '{"tag":"FT101","values":[41.2,41.5,41.1]}'),
            ("/api/v1/alarms/active", '{"alarms":[]}'),
            ("/status", '{"status":"ok","uptime":86400}'),
        ):  # fmt: skip
            req = (
                f"GET {path} HTTP/1.1\r\nHost: historian.plant.example\r\n"
                "User-Agent: PlantView/3.2\r\nAccept: application/json\r\n"
                "Connection: keep-alive\r\n\r\n"
            )
            resp = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n{body}"
            )
            self.pages.append((req.encode(), resp.encode()))

    def exchange(self, ts: int) -> _Packets:
        n, self.n = self.n, self.n + 1
        req, resp = self.pages[n % len(self.pages)]
        return [(ts, self.flow.frame(req)), (self.after(ts), self.flow.frame(resp, False))]


class _Ping(_Channel):
    """A monitoring server pings a device every 2 s (echo request and reply)."""

    period_ns = 2 * _S
    reply_ms = (0, 2)
    _DATA = b"abcdefghijklmnopqrstuvwabcdefghi"

    def __init__(self, monitor: _Host, target: _Host, ident: int, rng: random.Random) -> None:
        super().__init__(rng)
        self.ident, self.seq = ident, rng.randrange(1 << 16)
        size = 8 + len(self._DATA)
        self.headers = [
            bytes(_ipv4_frame(monitor.mac, target.mac, monitor.addr, target.addr, 1, b"", size)),
            bytes(_ipv4_frame(target.mac, monitor.mac, target.addr, monitor.addr, 1, b"", size)),
        ]
        words = sum(struct.unpack(f"!{len(self._DATA) // 2}H", self._DATA)) + ident
        self.sums = [words + 0x0800, words]  # with the type/code word of request, reply

    def _icmp(self, reply: bool) -> bytes:
        total = self.sums[reply] + self.seq
        while total > 0xFFFF:
            total = (total & 0xFFFF) + (total >> 16)
        head = struct.pack("!BBHHH", 0 if reply else 8, 0, ~total & 0xFFFF, self.ident, self.seq)
        return self.headers[reply] + head + self._DATA

    def exchange(self, ts: int) -> _Packets:
        self.seq = (self.seq + 1) & 0xFFFF
        return [(ts, self._icmp(False)), (self.after(ts), self._icmp(True))]


class _Arp(_Channel):
    """A host refreshes its ARP entry for a peer: who-has (broadcast) and the peer's reply."""

    period_ns = 30 * _S
    reply_ms = (0, 1)

    def __init__(self, asker: _Host, target: _Host, rng: random.Random) -> None:
        super().__init__(rng)
        arp = struct.Struct("!HHBBH6s4s6s4s")
        pad = bytes(18)  # to the 60-byte Ethernet minimum, as a SPAN port delivers it
        self.request = (
            b"\xff" * 6 + asker.mac + b"\x08\x06"
            + arp.pack(1, 0x0800, 6, 4, 1, asker.mac, asker.addr, bytes(6), target.addr) + pad
        )  # fmt: skip
        self.reply = (
            asker.mac + target.mac + b"\x08\x06"
            + arp.pack(1, 0x0800, 6, 4, 2, target.mac, target.addr, asker.mac, asker.addr) + pad
        )  # fmt: skip

    def exchange(self, ts: int) -> _Packets:
        return [(ts, self.request), (self.after(ts), self.reply)]


def _ntp_time(ts: int) -> int:
    sec, ns = divmod(ts, _S)
    return (sec + _NTP_EPOCH) << 32 | (ns << 32) // _S


class _Ntp(_Channel):
    """A device asks the site's NTP server for the time every 16 s (client/server mode)."""

    period_ns = 16 * _S
    reply_ms = (0, 2)
    _packet = struct.Struct("!BBbbII4sQQQQ")

    def __init__(self, client: _Host, server: _Host, rng: random.Random) -> None:
        super().__init__(rng)
        self.flow = _Flow(client, server, 123, 123, False, rng)

    def exchange(self, ts: int) -> _Packets:
        sent = _ntp_time(ts)
        req = self._packet.pack(0x23, 0, 4, -20, 0, 0, bytes(4), 0, 0, 0, sent)
        back = self.after(ts)
        reference = _ntp_time(ts - 40 * _S)
        resp = self._packet.pack(
            0x24, 2, 4, -20, 0x10, 0x20, _ip("203.0.113.1"), reference, sent,
            _ntp_time(back - 20_000), _ntp_time(back - 10_000),
        )  # fmt: skip
        return [(ts, self.flow.frame(req)), (back, self.flow.frame(resp, False))]


class _Syslog(_Channel):
    """A device logs a status line to the syslog server (one-way, irregular)."""

    period_ns = 2 * _S
    jitter = 0.5

    def __init__(self, device: _Host, server: _Host, name: str, rng: random.Random) -> None:
        super().__init__(rng)
        self.flow = _Flow(device, server, 49152 + rng.randrange(16000), 514, False, rng)
        self.name = name

    def exchange(self, ts: int) -> _Packets:
        self.n += 1
        stamp = time.strftime("%b %e %H:%M:%S", time.gmtime(ts // _S))
        line = f"<134>{stamp} {self.name} otd[311]: cycle {self.n} ok, cpu 12%, scan 9 ms"
        return [(ts, self.flow.frame(line.encode()))]


def _plant(rng: random.Random) -> list[_Channel]:
    """Who talks to whom: about 960 packets/s, 90% industrial polling."""
    hmis = [_Host(f"192.0.2.{11 + i}") for i in range(3)]
    scada, bms, engineering = _Host("192.0.2.20"), _Host("192.0.2.30"), _Host("192.0.2.40")
    modbus = [_Host(f"198.51.100.{10 + i}", "schneider") for i in range(8)]
    s7 = [_Host(f"198.51.100.{20 + i}", "siemens") for i in range(3)]
    logix = [_Host(f"198.51.100.{30 + i}", "rockwell") for i in range(2)]
    outstations = [_Host(f"198.51.100.{40 + i}", "sel") for i in range(5)]
    rtus = [_Host(f"198.51.100.{50 + i}") for i in range(3)]
    bacnet = [_Host(f"198.51.100.{60 + i}") for i in range(6)]
    dns, ntp, syslog = _Host("203.0.113.53"), _Host("203.0.113.123"), _Host("203.0.113.14")
    web, monitor = _Host("203.0.113.80"), _Host("203.0.113.50")
    names = {
        "historian.plant.example": web.ip,
        "ntp.plant.example": ntp.ip,
        "syslog.plant.example": syslog.ip,
        "scada.plant.example": scada.ip,
    }
    field = [*modbus, *s7, *logix, *outstations, *rtus, *bacnet]
    channels: list[_Channel] = [
        *(_ModbusPoll(c, plc, rng) for c in (*hmis[:2], scada) for plc in modbus),  # 480/s
        *(_S7Read(c, plc, rng) for c in hmis[:2] for plc in s7),  # 120/s
        *(_Dnp3Poll(scada, o, 10 + i, rng) for i, o in enumerate(outstations)),  # 100/s
        *(_EnipTagRead(c, plc, rng) for c in (hmis[2], engineering) for plc in logix),  # 80/s
        *(_EnipListIdentity(engineering, plc, rng) for plc in logix),
        *(_Iec104(scada, rtu, 1 + i, rng) for i, rtu in enumerate(rtus)),  # 60/s
        *(_BacnetRead(bms, c, rng) for c in bacnet),  # 60/s
        *(_DnsLookup(c, dns, names, rng) for c in (*hmis, engineering, bms)),  # 10/s
        *(_HttpGet(c, web, rng) for c in (*hmis, engineering)),  # 8/s
        *(_Ping(monitor, d, 0x0100 + i, rng) for i, d in enumerate(field[::2])),  # 14/s
        *(
            _Arp(a, b, rng)
            for a, b in zip((*hmis, scada, bms, engineering), field[1::3], strict=False)
        ),
        *(_Ntp(c, ntp, rng) for c in (*hmis, scada, bms, engineering, *field[::3])),
        *(_Syslog(d, syslog, f"rtu{i}", rng) for i, d in enumerate((*rtus, scada))),
    ]
    return channels


def mixed_plant(path: str | os.PathLike[str], packets: int = 1_000_000, seed: int = 1) -> int:
    """Write a mixed-protocol plant capture (ns pcap, Ethernet) and return the packet count.

    Normal traffic only, from the documentation ranges (HMIs and masters in 192.0.2.0/24,
    field devices in 198.51.100.0/24, site services in 203.0.113.0/24), each device with one
    MAC: Modbus/TCP polling (about half the packets), S7comm read var, DNP3 class polls
    (correct link CRCs), EtherNet/IP Read Tag and ListIdentity, IEC 60870-5-104 I- and
    S-frames, BACnet/IP ReadProperty, then DNS, HTTP GET/200, ICMP echo, ARP, NTP and syslog.
    Every exchange repeats with a period (+- a few percent jitter) and each request is followed
    by its response a few milliseconds later, interleaved with other traffic in time order.
    TCP connections are seen mid-session with consistent sequence numbers; frames are built
    once (Scapy for the OT layers) and patched per packet (seq/ack, transaction ids and
    sequence numbers). Timestamps start at 2026-01-01T00:00:00Z, about 1 ms per packet.
    """
    rng = random.Random(seed)
    channels = _plant(rng)
    # (time, order, channel) for the next exchanges; (time, order, frame) for answers due
    ticks = [(START_NS + rng.randrange(c.period_ns), i, c) for i, c in enumerate(channels)]
    heapq.heapify(ticks)
    due: list[tuple[int, int, bytes]] = []
    order = 0
    written = 0
    push, pop = heapq.heappush, heapq.heappop
    with open(path, "wb") as f:
        write_pcap_header(f, 1, nanosecond=True)
        out: list[bytes] = []
        while ticks:
            ts, i, channel = ticks[0]
            while due and due[0][0] <= ts:
                at, _, frame = pop(due)
                out.append(pcap_record(at, len(frame), frame))
            exchange = channel.exchange(ts)
            if written + len(due) + len(exchange) > packets:
                pop(ticks)  # no room for all of it: this channel stops, no half exchanges
                continue
            first_ts, first = exchange[0]
            out.append(pcap_record(first_ts, len(first), first))
            for at, frame in exchange[1:]:
                order += 1
                push(due, (at, order, frame))
            written += len(exchange)
            period = channel.period_ns
            spread = int(period * channel.jitter)
            heapq.heapreplace(ticks, (ts + period + rng.randrange(-spread, spread + 1), i, channel))
            if len(out) >= _BATCH:
                f.write(b"".join(out))
                out.clear()
        out.extend(pcap_record(at, len(frame), frame) for at, _, frame in sorted(due))
        f.write(b"".join(out))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a benchmark capture.")
    parser.add_argument("out", help="output pcap file")
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--mixed", action="store_true", help="mixed-protocol plant traffic")
    parser.add_argument("--clients", type=int, default=5, help="Modbus polling clients")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.mixed:
        count = mixed_plant(args.out, args.packets, args.seed)
    else:
        count = modbus_polling(args.out, args.packets, args.clients, args.seed)
    elapsed = time.perf_counter() - started
    size = os.path.getsize(args.out) / 1e6
    print(f"wrote {count} packets ({size:.1f} MB) to {args.out} in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
