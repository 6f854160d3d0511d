"""Vendor names from identifiers, offline: the IEEE OUI registry bundled with ``netaddr``
(never a network lookup) and the few protocol vendor-id tables the identification needs."""

from __future__ import annotations

from functools import lru_cache

from netaddr import EUI, AddrFormatError, NotRegisteredError

__all__ = ["BACNET_VENDORS", "CIP_DEVICE_TYPES", "CIP_VENDORS", "DCP_ROLES", "oui_vendor"]


@lru_cache(maxsize=4096)
def oui_vendor(mac: str) -> str | None:
    """The organisation the IEEE registered ``mac``'s OUI to, or None (unregistered, locally
    administered, or not a MAC)."""
    try:
        eui = EUI(mac)
        if int(eui) >> 40 & 0x02:  # locally administered: no OUI
            return None
        return str(eui.oui.registration().org).strip().rstrip(",").strip() or None
    except (AddrFormatError, NotRegisteredError, ValueError, TypeError, IndexError):
        return None


# ODVA vendor ids (the most common in plants); others show as "vendor id N".
CIP_VENDORS: dict[int, str] = {
    1: "Rockwell Automation/Allen-Bradley", 2: "Namco Controls Corp.",
    5: "Rockwell Automation/Reliance Elec.", 8: "Molex Incorporated", 9: "Eaton Electrical",
    40: "WAGO Corporation", 44: "Danfoss", 46: "ABB, Inc.", 47: "Omron Corporation",
    48: "TURCK", 50: "Mitsubishi Electric Automation, Inc.", 58: "Schneider Automation, Inc.",
    90: "HMS Industrial Networks AB", 108: "Beckhoff Automation GmbH",
    119: "Phoenix Contact", 161: "Hilscher GmbH", 243: "Schneider Electric",
    283: "Hirschmann", 356: "Fanuc Robotics America", 674: "Prosoft Technology",
    1133: "Siemens Energy & Automation, Inc.",
}  # fmt: skip

# CIP device profiles (Identity attribute 2).
CIP_DEVICE_TYPES: dict[int, str] = {
    0x00: "Generic Device (deprecated)", 0x02: "AC Drive", 0x03: "Motor Overload",
    0x04: "Limit Switch", 0x05: "Inductive Proximity Switch", 0x06: "Photoelectric Sensor",
    0x07: "General Purpose Discrete I/O", 0x09: "Resolver", 0x0C: "Communications Adapter",
    0x0E: "Programmable Logic Controller", 0x10: "Position Controller", 0x13: "DC Drive",
    0x15: "Contactor", 0x16: "Motor Starter", 0x17: "Soft Start",
    0x18: "Human-Machine Interface", 0x1A: "Mass Flow Controller", 0x1B: "Pneumatic Valve",
    0x1C: "Vacuum Pressure Gauge", 0x22: "Process Control Valve", 0x23: "Residual Gas Analyzer",
    0x25: "CIP Motion Drive", 0x2B: "Generic Device (keyable)", 0x2C: "Managed Switch",
    0x32: "ControlNet Physical Layer Component",
}  # fmt: skip

# ASHRAE BACnet vendor ids (common ones).
BACNET_VENDORS: dict[int, str] = {
    0: "ASHRAE", 2: "The Trane Company", 5: "Johnson Controls, Inc.", 7: "Siemens",
    8: "Delta Controls", 10: "Schneider Electric", 15: "Carrier Corporation",
    17: "Honeywell Inc.", 24: "Automated Logic Corporation", 36: "Alerton / Honeywell",
    86: "Distech Controls", 95: "Reliable Controls Corporation", 260: "Steve Karg / BACnet Stack",
}  # fmt: skip

# PROFINET DCP DeviceRole bits.
DCP_ROLES: dict[int, str] = {
    0x01: "IO-Device",
    0x02: "IO-Controller",
    0x04: "IO-Multidevice",
    0x08: "PN-Supervisor",
}


def vendor_name(table: dict[int, str], vendor_id: int) -> str:
    return table.get(vendor_id) or f"vendor id {vendor_id}"
