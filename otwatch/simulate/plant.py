"""A small simulated plant: normal Modbus/TCP operations, then an intrusion.

Writes a pcap file (nanosecond timestamps) that the demo replays: a learning phase of normal
traffic, then the same normal traffic interleaved with attack steps an OT sensor must catch.
All addresses are in the documentation ranges (192.0.2.0/24, 198.51.100.0/24); frames are
built with explicit MAC addresses so Scapy never resolves one on a real network.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from otwatch.agent.capture.pcapwrite import pcap_record, write_pcap_header

__all__ = ["ATTACK_STEPS", "PlantProfile", "write_plant_capture"]

NS = 1_000_000_000
START_NS = 1_798_761_600 * NS  # 2027-01-01T00:00:00Z

ATTACK_STEPS = (
    "rogue device 192.0.2.66 joins the network (New Asset Detected)",
    "rogue device scans the PLC's TCP ports (Port Scan Detected)",
    "rogue device probes port 0 (Illegal Connection Attempt on Port 0)",
    "rogue device writes holding registers with function 16 (Unpermitted Usage of Modbus "
    "Function Code)",
    "HMI sends diagnostics function 8 / restart communications (Unpermitted Usage of Modbus "
    "Function Code)",
    "PLC answers reads of unmapped registers with exception 2 (Modbus Exception)",
)


@dataclass(frozen=True)
class Device:
    ip: str
    mac: str


@dataclass
class PlantProfile:
    """Who polls whom, how often. Vary ``seed``/counts for several plants."""

    seed: int = 7
    hmis: int = 2
    plcs: int = 3
    poll_interval_s: float = 0.5
    learning_s: float = 300.0
    attack_s: float = 120.0
    functions: tuple[int, ...] = (3, 4)
    write_every: int = 40
    """Every N-th poll of a PLC by its first HMI is a function 6 write (normal operation)."""
    engineering: bool = False
    """Add an engineering station (192.0.2.30) that uploads the first PLC's program over
    S7comm once during learning (the device inventory's role guesses need one)."""
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)


def _device(n: int) -> Device:
    return Device(f"192.0.2.{n}", f"02:00:c0:00:02:{n:02x}")


class _Builder:
    def __init__(self) -> None:
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import ARP, Ether

        self.IP, self.TCP, self.Ether, self.ARP = IP, TCP, Ether, ARP
        self.seq: dict[tuple[str, str, int, int], int] = {}

    def tcp(
        self, src: Device, dst: Device, sport: int, dport: int, flags: str, payload: bytes = b""
    ) -> bytes:
        key = (src.ip, dst.ip, sport, dport)
        seq = self.seq.get(key, 1000)
        self.seq[key] = seq + len(payload) + (1 if "S" in flags else 0)
        pkt = (
            self.Ether(src=src.mac, dst=dst.mac)
            / self.IP(src=src.ip, dst=dst.ip)
            / self.TCP(sport=sport, dport=dport, flags=flags, seq=seq)
        )
        return bytes(pkt / payload) if payload else bytes(pkt)

    def arp_request(self, src: Device, target_ip: str) -> bytes:
        return bytes(
            self.Ether(src=src.mac, dst="ff:ff:ff:ff:ff:ff")
            / self.ARP(op=1, hwsrc=src.mac, psrc=src.ip, pdst=target_ip)
        )


def _mbap(tid: int, pdu: bytes, unit: int = 1) -> bytes:
    return (
        tid.to_bytes(2, "big")
        + b"\x00\x00"
        + (len(pdu) + 1).to_bytes(2, "big")
        + bytes([unit])
        + pdu
    )


def _normal(
    profile: PlantProfile,
    build: _Builder,
    hmis: list[Device],
    plcs: list[Device],
    start_ns: int,
    end_ns: int,
) -> Iterator[tuple[int, bytes]]:
    rng = profile._rng
    tid = 0
    step = int(profile.poll_interval_s * NS)
    t = start_ns
    polls = 0
    while t < end_ns:
        for h_index, hmi in enumerate(hmis):
            sport = 40000 + h_index
            for plc in plcs:
                tid = (tid + 1) & 0xFFFF
                polls += 1
                jitter = rng.randrange(0, 5_000_000)
                if h_index == 0 and polls % profile.write_every == 0:
                    req = (
                        bytes([6])
                        + rng.randrange(0, 10).to_bytes(2, "big")
                        + rng.randrange(0, 1000).to_bytes(2, "big")
                    )
                    resp = req
                else:
                    fc = profile.functions[polls % len(profile.functions)]
                    req = bytes([fc]) + (0).to_bytes(2, "big") + (10).to_bytes(2, "big")
                    resp = bytes([fc, 20]) + bytes(rng.randrange(256) for _ in range(20))
                yield t + jitter, build.tcp(hmi, plc, sport, 502, "PA", _mbap(tid, req))
                yield (
                    t + jitter + 2_000_000,
                    build.tcp(plc, hmi, 502, sport, "PA", _mbap(tid, resp)),
                )
        if rng.random() < 0.02:
            who = rng.choice(hmis)
            yield t + 7_000_000, build.arp_request(who, rng.choice(plcs).ip)
        t += step


def _attack(
    build: _Builder, hmis: list[Device], plcs: list[Device], start_ns: int
) -> Iterator[tuple[int, bytes]]:
    rogue = _device(66)
    plc, hmi = plcs[0], hmis[0]
    t = start_ns
    yield t, build.arp_request(rogue, plc.ip)
    t += NS
    for port in (
        21,
        22,
        23,
        25,
        53,
        80,
        102,
        110,
        135,
        139,
        143,
        443,
        445,
        502,
        993,
        995,
        1433,
        1911,
        2404,
        3306,
        3389,
        4840,
        5900,
        8080,
        20000,
        44818,
        47808,
    ):
        yield t, build.tcp(rogue, plc, 51000, port, "S")
        t += 20_000_000
        if port == 502:
            yield t, build.tcp(plc, rogue, 502, 51000, "SA")
        else:
            yield t, build.tcp(plc, rogue, port, 51000, "RA")
        t += 20_000_000
    t += 5 * NS
    yield t, build.tcp(rogue, plc, 51001, 0, "S")
    t += 5 * NS
    for i in range(3):
        pdu = (
            bytes([16])
            + (100 + i).to_bytes(2, "big")
            + (2).to_bytes(2, "big")
            + b"\x04"
            + (b"\x00\x2a\x00\x2b")
        )
        yield t, build.tcp(rogue, plc, 51002, 502, "PA", _mbap(900 + i, pdu))
        yield (
            t + 3_000_000,
            build.tcp(plc, rogue, 502, 51002, "PA", _mbap(900 + i, bytes([16]) + pdu[1:5])),
        )
        t += 2 * NS
    t += 5 * NS
    diag = bytes([8]) + (1).to_bytes(2, "big") + b"\x00\x00"  # restart communications
    yield t, build.tcp(hmi, plc, 40000, 502, "PA", _mbap(950, diag))
    t += 5 * NS
    for i in range(4):
        req = bytes([3]) + (9000 + i).to_bytes(2, "big") + (1).to_bytes(2, "big")
        yield t, build.tcp(hmi, plc, 40000, 502, "PA", _mbap(960 + i, req))
        yield t + 2_000_000, build.tcp(plc, hmi, 502, 40000, "PA", _mbap(960 + i, b"\x83\x02"))
        t += NS


ENGINEERING_STATION = _device(30)


def _s7_job(function: int, body: bytes = b"") -> bytes:
    """TPKT + COTP DT + an S7 job whose parameter starts with ``function``."""
    param = bytes([function]) + body
    s7 = bytes([0x32, 0x01, 0, 0, 0, 1]) + len(param).to_bytes(2, "big") + b"\x00\x00" + param
    cotp = bytes([0x02, 0xF0, 0x80])
    return bytes([3, 0]) + (4 + len(cotp) + len(s7)).to_bytes(2, "big") + cotp + s7


def _engineering(build: _Builder, plc: Device, t: int) -> Iterator[tuple[int, bytes]]:
    """The engineering station connects to the PLC's S7 port and starts a block upload."""
    eng = ENGINEERING_STATION
    yield t, build.tcp(eng, plc, 49152, 102, "S")
    yield t + 1_000_000, build.tcp(plc, eng, 102, 49152, "SA")
    yield t + 2_000_000, build.tcp(eng, plc, 49152, 102, "PA", _s7_job(0x1D, bytes(17)))
    yield t + 3_000_000, build.tcp(eng, plc, 49152, 102, "FA")


def write_plant_capture(
    path: str | Path, profile: PlantProfile | None = None, *, with_attack: bool = True
) -> int:
    """Write the capture; returns the number of packets. The learning phase is the first
    ``profile.learning_s`` seconds of traffic."""
    from scapy.layers import l2 as scapy_l2

    # never ARP on a real NIC (patching scapy's method: mypy rejects assigning to a method)
    scapy_l2.Neighbor.resolve = lambda self, l2inst, l3inst: None  # type: ignore[method-assign]
    profile = profile or PlantProfile()
    build = _Builder()
    hmis = [_device(10 + i) for i in range(profile.hmis)]
    plcs = [_device(20 + i) for i in range(profile.plcs)]
    learn_end = START_NS + int(profile.learning_s * NS)
    end = learn_end + int(profile.attack_s * NS)
    frames = list(_normal(profile, build, hmis, plcs, START_NS, end))
    if profile.engineering:
        frames += list(_engineering(build, plcs[0], START_NS + 30 * NS))
    if with_attack:
        frames += list(_attack(build, hmis, plcs, learn_end + 10 * NS))
    frames.sort(key=lambda item: item[0])
    with open(path, "wb") as out:
        write_pcap_header(out, 1)
        for ts, data in frames:
            out.write(pcap_record(ts, len(data), data))
    return len(frames)
