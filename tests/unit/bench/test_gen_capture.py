"""The benchmark capture generator writes frames that Scapy dissects as Modbus/TCP."""

from __future__ import annotations

import importlib.util
import ipaddress
import itertools
import sys
from pathlib import Path
from types import ModuleType

import pytest
from scapy.contrib.modbus import ModbusADURequest, ModbusADUResponse
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.decode.headers import ACK, PSH, decode

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
