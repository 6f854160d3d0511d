"""Identification decoded from the real captures equals what tshark decodes, field by field.

The corpus carries ENIP ListIdentity replies, CIP Identity Get_Attributes_All replies,
BACnet I-Am and ReadProperty replies of a device object, PROFINET DCP Identify responses and
DNP3 link addresses. It has no Modbus FC 43 response and no S7 SZL reply, so those two are
checked on frames built here, written to a pcap and decoded by tshark the same way
(``test_identify_frames.py``).
"""

from __future__ import annotations

import html
import re
import subprocess

import pytest

from tests.unit.agent.inventory.conftest import facts_of, inventory_of, tshark

pytestmark = pytest.mark.usefixtures("pcaps")


def test_enip_list_identity_matches_tshark(pcaps) -> None:
    path = pcaps / "enip_list_identity.pcap"
    rows = tshark(path, "enip.command == 0x0063 && enip.lir.name", "ip.src", "enip.lir.vendor",
                  "enip.lir.devtype", "enip.lir.prodcode", "enip.lir.revision",
                  "enip.lir.serial", "enip.lir.name")  # fmt: skip
    assert rows, "the capture has a ListIdentity reply"
    engine = inventory_of(path)
    for ip, vendor, devtype, prodcode, revision, serial, name in rows:
        facts = facts_of(engine, ip, "enip-listidentity")
        assert facts["vendor_id"] == str(int(vendor, 16))
        assert facts["vendor"] == "Rockwell Automation/Allen-Bradley"
        assert facts["device_type"] == "Communications Adapter" and devtype == "12"
        assert facts["product_code"] == prodcode
        major, minor = int(revision) >> 8, int(revision) & 0xFF  # tshark shows it as 4.03
        assert facts["firmware"] == f"{major}.{minor:03d}"
        assert facts["serial"] == serial
        assert facts["model"] == name


def test_cip_identity_object_matches_tshark(pcaps) -> None:
    path = pcaps / "enip_firmware_update.pcap"
    rows = tshark(path, "cip.id.vendor_id", "ip.src", "cip.id.vendor_id", "cip.id.device_type",
                  "cip.id.product_code", "cip.id.major_rev", "cip.id.minor_rev",
                  "cip.id.serial_number", "cip.id.product_name")  # fmt: skip
    assert rows
    engine = inventory_of(path)
    for ip, vendor, devtype, product, major, minor, serial, name in rows:
        facts = facts_of(engine, ip, "cip-identity")
        assert facts["vendor_id"] == str(int(vendor, 16))
        assert facts["product_code"] == str(int(product, 0))
        assert facts["firmware"] == f"{int(major)}.{int(minor):03d}"
        assert facts["serial"] == f"0x{int(serial, 16):08x}"
        assert facts["model"] == name
        assert devtype


def test_bacnet_i_am_matches_tshark(pcaps) -> None:
    path = pcaps / "bacnet_stack_services.pcap"
    rows = tshark(path, "bacapp.unconfirmed_service == 0 && ip.src", "ip.src",
                  "bacapp.instance_number", "bacapp.vendor_identifier")  # fmt: skip
    assert rows
    engine = inventory_of(path)
    for ip, instance, vendor in rows:
        facts = facts_of(engine, ip, "bacnet-iam")
        assert facts["bacnet_instance"] == instance
        assert facts["vendor_id"] == vendor


def _tshark_read_property_strings(path) -> list[tuple[str, str, str]]:
    """``(ip.src, property id, string)`` of ReadProperty ACKs of a device object, from
    tshark's PDML (it has no field for most string values, only their text)."""
    argv = ["tshark", "-r", str(path), "-Y",
            "bacapp.type == 3 && bacapp.confirmed_service == 12 && bacapp.objectType == 8",
            "-T", "pdml"]  # fmt: skip
    pdml = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    out = []
    for packet in pdml.split("<packet>")[1:]:
        src = re.search(r'name="ip.src" [^>]*show="([^"]+)"', packet)
        prop = re.search(r'name="bacapp.property_identifier" [^>]*show="(\d+)"', packet)
        text = (
            re.search(r'name="bacapp.object_name" [^>]*show="([^"]*)"', packet)
            or re.search(r'show="[a-z-]+: [^"]*?&#x27;(.*?)&#x27;"', packet)
            or re.search(r'show="vendor-identifier: \(Unsigned\) (\d+)"', packet)
        )
        if src and prop and text:
            out.append((src[1], prop[1], html.unescape(text[1])))
    return out


def test_bacnet_read_property_of_device_matches_tshark(pcaps) -> None:
    path = pcaps / "bacnet_readprop.pcap"
    names = {"77": "name", "70": "model", "44": "firmware", "121": "vendor", "120": "vendor_id"}
    engine = inventory_of(path)
    compared = set()
    for ip, prop, text in _tshark_read_property_strings(path):
        if prop in names:
            assert facts_of(engine, ip, "bacnet-rp")[names[prop]] == text
            compared.add(prop)
    assert compared == set(names), "vendor, model, firmware and name are read in this capture"


def test_profinet_dcp_identify_response_matches_tshark(pcaps) -> None:
    path = pcaps / "profinet_dcp_set_ip.pcap"
    rows = tshark(path, "pn_dcp.service_type == 1 && pn_dcp.suboption_device_nameofstation",
                  "eth.src", "pn_dcp.suboption_device_nameofstation", "pn_dcp.suboption_vendor_id",
                  "pn_dcp.suboption_device_id", "pn_dcp.suboption_device_role",
                  "pn_dcp.suboption_device_devicevendorvalue",
                  "pn_dcp.suboption_ip_ip")  # fmt: skip
    assert rows
    engine = inventory_of(path)
    for mac, station, vendor_id, device_id, role, type_of_station, ip in rows:
        facts = facts_of(engine, ip, "profinet-dcp")
        assert engine.table.get(ip).mac == mac  # type: ignore[union-attr]
        assert facts["name"] == station
        assert facts["vendor_id"] == vendor_id and facts["device_id"] == device_id
        assert facts["role"] == "IO-Device" and int(role, 16) == 1
        assert facts["model"] == type_of_station


def test_dnp3_link_addresses_match_tshark(pcaps) -> None:
    path = pcaps / "dnp3_test_data.pcap"
    rows = tshark(path, "dnp3.src", "ip.src", "dnp3.src", "dnp3.ctl.dir")
    engine = inventory_of(path)
    expected = {(ip, src) for ip, src, _dir in rows}
    got = set()
    for ip, _src, direction in rows:
        dev = engine.table.get(ip)
        assert dev is not None
        got.add((ip, dev.facts[("dnp3_address", "dnp3")][0]))
        tag = "dnp3_master" if direction in ("1", "True") else "dnp3_outstation"
        assert tag in dev.evidence
    assert got <= expected and {ip for ip, _ in got} == {ip for ip, _ in expected}


def test_ip_moved_to_another_address_keeps_history(pcaps) -> None:
    """DCP Set gives the IO device 192.168.0.10; its ARP then shows the MAC at the new IP."""
    engine = inventory_of(pcaps / "profinet_dcp_set_ip.pcap")
    old, new = engine.table.get("192.168.0.6"), engine.table.get("192.168.0.10")
    assert old is not None and new is not None
    assert "08:00:06:93:cf:32" in old.macs and "08:00:06:93:cf:32" in new.macs
