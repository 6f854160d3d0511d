"""The benchmark capture generators: Modbus polling that Scapy dissects as Modbus/TCP, and a
mixed-protocol plant with consistent TCP streams, answered requests and no alerts after
learning."""

from __future__ import annotations

import importlib.util
import ipaddress
import itertools
import shutil
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
from scapy.contrib.modbus import ModbusADURequest, ModbusADUResponse
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.decode.headers import ACK, PSH, PacketRecord, decode
from otwatch.agent.decode.layers.dnp3 import LinkFrame, parse_frame
from otwatch.agent.decode.ports import app_protocol
from tests.factories import alert_types, run_pipeline

BENCH = Path(__file__).resolve().parents[3] / "bench" / "gen_capture.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("otwatch_bench_gen_capture", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load()


def test_modbus_polling_capture(tmp_path: Path) -> None:
    path = tmp_path / "poll.pcap"
    assert gen.modbus_polling(path, packets=2000, clients=5, seed=3) == 2000
    with open_capture(path) as cap:
        frames = list(cap)
    assert cap.problem is None and cap.nanosecond and cap.linktype == 1
    assert len(frames) == 2000
    stamps = [f[0] for f in frames]
    assert stamps[0] == gen.START_NS
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(500_000 <= gap <= 1_500_000 for gap in gaps)

    clients = ipaddress.ip_network("192.0.2.0/24")
    hosts, functions, pending = set(), set(), {}
    for ts, wire, _, data in frames:
        pkt = Ether(data)
        assert wire == len(data)
        ip, tcp = pkt[IP], pkt[TCP]
        if ModbusADURequest in pkt:
            adu = pkt[ModbusADURequest]
            assert (ip.dst, tcp.dport) == (gen.SERVER_IP, gen.SERVER_PORT)
            assert ipaddress.ip_address(ip.src) in clients
            hosts.add(ip.src)
            pending[(ip.src, tcp.sport)] = (adu.transId, adu.payload.funcCode)
        else:
            adu = pkt[ModbusADUResponse]
            assert (ip.src, tcp.sport) == (gen.SERVER_IP, gen.SERVER_PORT)
            # every response answers the request just sent by that client
            assert pending.pop((ip.dst, tcp.dport)) == (adu.transId, adu.payload.funcCode)
        assert adu.len == len(bytes(adu)) - 6
        functions.add(adu.payload.funcCode)
        rec = decode(ts, wire, 1, data)
        assert rec.malformed is None and rec.tcp_flags == PSH | ACK
        assert rec.payload == bytes(adu)
    assert len(hosts) == 5
    assert functions == {3, 4, 6}


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.pcap"
    assert gen.main([str(out), "--packets", "11", "--clients", "2"]) == 0
    assert "wrote 11 packets" in capsys.readouterr().out
    with open_capture(out) as cap:
        assert sum(1 for _ in cap) == 11


def test_rejects_bad_client_count(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clients"):
        gen.modbus_polling(tmp_path / "x.pcap", packets=1, clients=0)


# -- mixed plant ------------------------------------------------------------------------------

MIXED_PACKETS = 40_001  # about 40 s of traffic: every periodic exchange (ARP: 30 s) shows up
DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
OT = {"modbus", "s7comm", "dnp3", "enip", "iec104", "bacnet"}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[PacketRecord, bytes]]:
    """The decoded records of a small mixed capture, with their frames."""
    path = tmp_path_factory.mktemp("mixed") / "plant.pcap"
    assert gen.mixed_plant(path, packets=MIXED_PACKETS, seed=2) == MIXED_PACKETS
    with open_capture(path) as cap:
        records = [(decode(ts, wire, link, data), data) for ts, wire, link, data in cap]
    assert cap.problem is None and cap.nanosecond and cap.linktype == 1
    return records


def _kind(rec: PacketRecord) -> str:
    if rec.ethertype == 0x0806:
        return "arp"
    if rec.ip_proto == 1:
        return "icmp"
    return app_protocol(rec.ip_proto, rec.sport, rec.dport) or f"port {rec.dport}"


def test_mixed_plant_count_time_and_addresses(mixed: list[tuple[PacketRecord, bytes]]) -> None:
    assert len(mixed) == MIXED_PACKETS
    stamps = [rec.ts_ns for rec, _ in mixed]
    assert stamps == sorted(stamps) and stamps[0] >= gen.START_NS
    assert 30e9 < stamps[-1] - stamps[0] < 60e9  # roughly 1 ms per packet
    macs: dict[str, bytes] = {}
    for rec, _ in mixed:
        assert rec.malformed is None
        if rec.src_ip is None:  # ARP
            continue
        for ip, mac in ((rec.src_ip, rec.src_mac), (rec.dst_ip, rec.dst_mac)):
            assert any(ipaddress.ip_address(ip) in net for net in DOC_NETS)
            assert macs.setdefault(ip, mac) == mac, f"{ip} seen with two MACs"


def test_mixed_plant_protocol_mix(mixed: list[tuple[PacketRecord, bytes]]) -> None:
    kinds = Counter(_kind(rec) for rec, _ in mixed)
    it = {"dns", "http", "icmp", "arp", "ntp", "syslog"}
    assert set(kinds) == OT | it
    share = {kind: count / len(mixed) for kind, count in kinds.items()}
    assert 0.4 < share["modbus"] < 0.6  # mostly OT polling, about half of it Modbus
    assert sum(share[k] for k in OT) > 0.85
    assert all(share[k] >= 0.05 for k in OT - {"modbus"})


def _tcp_ack(data: bytes) -> int:
    return struct.unpack_from("!I", data, 14 + 20 + 8)[0]


def test_mixed_plant_tcp_streams_are_consistent(mixed: list[tuple[PacketRecord, bytes]]) -> None:
    """Per direction, each segment starts where the previous one ended and acknowledges all
    the peer has sent; requests and replies alternate (IEC 104: the RTU speaks first)."""
    next_seq: dict[tuple, int] = {}
    last_sender: dict[frozenset, tuple] = {}
    flows = 0
    for rec, data in mixed:
        if rec.ip_proto != 6:
            continue
        me = (rec.src_ip, rec.sport)
        key, back = (me, (rec.dst_ip, rec.dport)), ((rec.dst_ip, rec.dport), me)
        assert rec.payload and rec.tcp_flags == PSH | ACK
        if key in next_seq:
            assert rec.tcp_seq == next_seq[key]
        if back in next_seq:
            assert _tcp_ack(data) == next_seq[back]
        next_seq[key] = (rec.tcp_seq + len(rec.payload)) & 0xFFFFFFFF
        conversation = frozenset(key)
        flows += conversation not in last_sender
        if _kind(rec) != "iec104":  # an interrogation is several I-frames in a row
            assert last_sender.get(conversation) != me, "two requests without a reply"
        last_sender[conversation] = me
    assert flows == 24 + 6 + 5 + 4 + 3 + 4  # Modbus, S7, DNP3, EtherNet/IP, IEC 104, HTTP


def _reply_ids(rec: PacketRecord, data: bytes) -> object:
    """What pairs a reply with its request, per protocol (``None``: not checked)."""
    p = rec.payload
    return {
        "modbus": lambda: p[:2],
        "s7comm": lambda: p[11:13],
        "enip": lambda: p[12:20],
        "dnp3": lambda: parse_frame(p).user_data[1] & 0x0F,  # application sequence
        "bacnet": lambda: p[8] if p[6] == 0 else p[7],  # invoke id: request, ComplexACK
        "dns": lambda: p[:2],
        "ntp": lambda: p[40:48] if p[0] & 7 == 3 else p[24:32],  # transmit -> origin
        "icmp": lambda: data[38:42],  # identifier and sequence
    }.get(_kind(rec), lambda: None)()


def test_mixed_plant_every_request_is_answered(mixed: list[tuple[PacketRecord, bytes]]) -> None:
    pending: dict[frozenset, tuple] = {}
    answered: Counter[str] = Counter()
    for rec, data in mixed:
        kind = _kind(rec)
        if kind == "dnp3":
            assert isinstance(parse_frame(rec.payload), LinkFrame), "bad DNP3 frame/CRC"
        ident = _reply_ids(rec, data)
        if ident is None:
            continue
        ends = frozenset(((rec.src_ip, rec.sport), (rec.dst_ip, rec.dport)))
        if ends in pending:
            assert pending.pop(ends) == (kind, ident), f"{kind} reply does not match"
            answered[kind] += 1
        else:
            pending[ends] = (kind, ident)
    assert len(pending) <= 10  # only exchanges cut by the end of the capture
    assert set(answered) == {"modbus", "s7comm", "enip", "dnp3", "bacnet", "dns", "ntp", "icmp"}


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_mixed_plant_decodes_cleanly_in_tshark(tmp_path: Path) -> None:
    path = tmp_path / "plant.pcap"
    gen.mixed_plant(path, packets=4000, seed=7)
    fields = ["frame.protocols", "_ws.expert.severity", "_ws.malformed"]
    rows = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", *(a for f in fields for a in ("-e", f))],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(rows) == 4000
    warning = 0x00600000  # expert severity PI_WARN; HTTP's "chat" notes sit below it
    layers = set()
    for row in rows:
        stack, severity, malformed = [*row.split("\t"), "", ""][:3]
        assert not malformed and max(map(int, severity.split(",") if severity else [0])) < warning
        layers.update(stack.split(":"))
    expected = {"mbtcp", "s7comm", "dnp3", "cip", "iec60870_asdu", "bacapp", "dns", "http"}
    assert expected | {"ntp", "syslog", "icmp"} <= layers


def test_mixed_plant_raises_no_alert_after_learning(store) -> None:
    """Normal traffic only: after learning on its first 35 s, the rest raises nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plant.pcap"
        gen.mixed_plant(path, packets=50_000, seed=8)
        with open_capture(path) as cap:
            frames = [(ts, wire, link, data) for ts, wire, link, data in cap]
    run_pipeline(store, frames, learning_period_ns=35 * 1_000_000_000)
    assert alert_types(store) == {}


def test_cli_mixed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mixed.pcap"
    assert gen.main([str(out), "--packets", "101", "--mixed"]) == 0
    assert "wrote 101 packets" in capsys.readouterr().out
    with open_capture(out) as cap:
        assert sum(1 for _ in cap) == 101
