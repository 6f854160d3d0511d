"""Which application protocol a transport port carries (the cheap first guess).

Engines subscribe to these tags; deep inspection confirms or rejects the guess.
"""

from __future__ import annotations

__all__ = ["OT_PROTOCOLS", "TCP_PORTS", "UDP_PORTS", "app_protocol"]

TCP_PORTS: dict[int, str] = {
    502: "modbus",
    20000: "dnp3",
    102: "s7comm",
    44818: "enip",
    2404: "iec104",
    4712: "c37118",
    5094: "hart_ip",
    18245: "ge_srtp",
    1911: "fox",
    4840: "opcua",
    9600: "omron_fins",
    5007: "melsec",
    20547: "proconos",
    21: "ftp",
    22: "ssh",
    23: "telnet",
    25: "smtp",
    53: "dns",
    80: "http",
    8080: "http",
    135: "msrpc",
    139: "netbios",
    443: "tls",
    445: "smb",
    1433: "tds",
    3306: "mysql",
    3389: "rdp",
    5432: "postgres",
    5900: "vnc",
}

UDP_PORTS: dict[int, str] = {
    47808: "bacnet",
    2222: "enip_io",
    44818: "enip",
    20000: "dnp3",
    5094: "hart_ip",
    4712: "c37118",
    53: "dns",
    67: "dhcp",
    68: "dhcp",
    69: "tftp",
    123: "ntp",
    137: "nbns",
    138: "netbios",
    161: "snmp",
    162: "snmp",
    514: "syslog",
    1900: "ssdp",
    5353: "mdns",
    5355: "llmnr",
}

OT_PROTOCOLS = frozenset(
    {
        "modbus", "dnp3", "s7comm", "enip", "enip_io", "iec104", "c37118", "hart_ip",
        "ge_srtp", "fox", "opcua", "omron_fins", "melsec", "proconos", "bacnet",
        "profinet", "goose", "sv",
    }
)  # fmt: skip


def app_protocol(ip_proto: int | None, sport: int | None, dport: int | None) -> str | None:
    """The protocol tag for a TCP/UDP port pair (server port first), or None."""
    table = TCP_PORTS if ip_proto == 6 else UDP_PORTS if ip_proto == 17 else None
    if table is None:
        return None
    return table.get(dport) or table.get(sport)  # type: ignore[arg-type]  # None: no entry
