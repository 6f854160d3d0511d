"""Modbus FC 43/14 and S7 SZL replies (the corpus has none): frames built here, written to a
pcap, decoded by otwatch and by tshark, compared field by field."""

from __future__ import annotations

import shutil
import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from otwatch.agent.engines.modbus import ModbusEngine
from tests.unit.agent.inventory.conftest import facts_of, inventory_of, tshark

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

PLC, HMI = "192.0.2.20", "192.0.2.10"
PLC_MAC, HMI_MAC = "02:00:c0:00:02:14", "02:00:c0:00:02:0a"


def _frame(payload: bytes, sport: int, dport: int, seq: int = 1):
    return (Ether(src=PLC_MAC, dst=HMI_MAC) / IP(src=PLC, dst=HMI)
            / TCP(sport=sport, dport=dport, flags="PA", seq=seq) / Raw(payload))  # fmt: skip


def modbus_device_id_reply() -> bytes:
    objects = [(0, b"Schneider Electric"), (1, b"BMX P34 2020"), (2, b"v3.20"),
               (5, b"Modicon M340")]  # fmt: skip
    body = b"".join(bytes([oid, len(value)]) + value for oid, value in objects)
    pdu = bytes([0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, len(objects)]) + body
    return struct.pack(">HHHB", 7, 0, len(pdu) + 1, 1) + pdu


def s7_szl_reply(szl_id: int, records: list[bytes], record_len: int) -> bytes:
    data_body = struct.pack(">HHHH", szl_id, 0, record_len, len(records)) + b"".join(records)
    data = bytes([0xFF, 0x09]) + struct.pack(">H", len(data_body)) + data_body
    param = bytes([0x00, 0x01, 0x12, 0x08, 0x12, 0x84, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00])
    s7 = bytes([0x32, 0x07, 0, 0]) + struct.pack(">HHH", 0x0100, len(param), len(data))
    cotp = bytes([0x02, 0xF0, 0x80])
    body = cotp + s7 + param + data
    return struct.pack(">BBH", 3, 0, 4 + len(body)) + body


def _szl_0011() -> bytes:
    module = struct.pack(">H", 1) + b"6ES7 315-2EH14-0AB0 " + struct.pack(">HHH", 0xC0, 0, 1)
    firmware = struct.pack(">H", 7) + b" " * 20 + struct.pack(">H", 0xC0) + bytes([0x56, 3, 2, 6])
    return s7_szl_reply(0x0011, [module, firmware], 28)


def _szl_001c() -> bytes:
    def rec(index: int, text: bytes) -> bytes:
        return struct.pack(">H", index) + text.ljust(32, b"\x00")

    return s7_szl_reply(0x001C, [rec(1, b"Line 3 filling"), rec(2, b"CPU 315-2 PN/DP"),
                                 rec(5, b"S C-X4U421302009")], 34)  # fmt: skip


def test_modbus_read_device_identification_matches_tshark(tmp_path) -> None:
    path = tmp_path / "fc43.pcap"
    request = struct.pack(">HHHB", 7, 0, 5, 1) + bytes([0x2B, 0x0E, 0x01, 0x00])
    frames = [
        Ether(src=HMI_MAC, dst=PLC_MAC) / IP(src=HMI, dst=PLC)
        / TCP(sport=40000, dport=502, flags="PA", seq=1) / Raw(request),
        _frame(modbus_device_id_reply(), 502, 40000),
    ]  # fmt: skip
    wrpcap(str(path), frames)
    engine = inventory_of(path, engines=(ModbusEngine,))
    facts = facts_of(engine, PLC, "modbus-fc43")
    all_ids, all_values = _all(path, "modbus.object_id"), _all(path, "modbus.object_str_value")
    names = {"0": "vendor", "1": "product_code", "2": "firmware", "5": "model"}
    assert len(all_ids) == 4
    assert {names[i]: v for i, v in zip(all_ids, all_values, strict=True)} == facts


def _all(path, field: str) -> list[str]:
    import subprocess

    out = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.srcport == 502", "-T", "fields",
                          "-e", field, "-E", "aggregator=|"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return [v for line in out.splitlines() for v in line.split("|") if v]


def test_s7_szl_module_identification_matches_tshark(tmp_path) -> None:
    path = tmp_path / "szl.pcap"
    wrpcap(str(path), [_frame(_szl_0011(), 102, 40001, 1), _frame(_szl_001c(), 102, 40001, 200)])
    order = tshark(path, "s7comm.szl.xy11.0001.index == 1", "s7comm.szl.xy11.0001.anz")[0][0]
    ausbg, ausbe = tshark(path, "s7comm.szl.xy11.0001.index == 7", "s7comm.szl.xy11.0001.ausbg",
                          "s7comm.szl.xy11.0001.ausbe", occurrence="l")[0]  # fmt: skip
    names = tshark(path, "s7comm.szl.001c.0001.name", "s7comm.szl.001c.0001.name",
                   "s7comm.szl.001c.0002.name", "s7comm.szl.001c.0005.serialn")[0]  # fmt: skip
    facts = facts_of(inventory_of(path), PLC, "s7-szl")
    assert facts["order_number"] == order.strip()
    major, minor, patch = int(ausbg, 0) & 0xFF, int(ausbe, 0) >> 8, int(ausbe, 0) & 0xFF
    assert facts["firmware"] == f"V{major}.{minor}.{patch}" == "V3.2.6"
    assert [facts["plant_name"], facts["name"], facts["serial"]] == [n.strip() for n in names]
