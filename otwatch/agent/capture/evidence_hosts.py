"""Which packets belong to an alert's hosts: a cheap byte search for the packed addresses first,
then the struct decoder confirms the address is in an IP (or ARP) header, so payload bytes
that happen to look like an address do not pull packets in."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from otwatch.agent.capture.pcapfile import Frame
from otwatch.agent.decode.headers import decode
from otwatch.agent.store.models import Alert


def alert_hosts(alert: Alert) -> list[str]:
    """The addresses whose packets make an alert's evidence: its IPs, else its MACs."""
    ips = [a for a in (alert.source_address, alert.destination_address) if a]
    if ips:
        return sorted(set(ips))
    return sorted({m.lower() for m in (alert.source_mac, alert.destination_mac) if m})


class HostMatcher:
    """Is a frame to or from one of ``hosts`` (IP addresses or MAC addresses)?"""

    def __init__(self, hosts: Iterable[str]) -> None:
        self.ips: set[str] = set()
        self.packed4: set[bytes] = set()
        self.packed6: set[bytes] = set()
        self.macs: set[bytes] = set()
        needles: set[bytes] = set()
        for host in hosts:
            if ":" in host and len(host) == 17 and host.count(":") == 5:
                mac = bytes.fromhex(host.replace(":", ""))
                self.macs.add(mac)
                needles.add(mac)
                continue
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                continue
            self.ips.add(str(ip))
            needles.add(ip.packed)
            if ip.version == 4:
                self.packed4.add(ip.packed)
            else:
                self.packed6.add(ip.packed)
        self.needles = tuple(needles)

    def __bool__(self) -> bool:
        return bool(self.needles)

    def __call__(self, frame: Frame) -> bool:
        data = frame[3]
        for needle in self.needles:
            if needle in data:
                break
        else:
            return False
        if frame[2] == 1 and data[12:14] == b"\x08\x00" and len(data) >= 34 and self.packed4:
            # untagged Ethernet + IPv4, the common case: the addresses sit at fixed offsets
            return data[26:30] in self.packed4 or data[30:34] in self.packed4
        rec = decode(*frame)
        ips = self.ips
        if ips and (
            rec.src_ip in ips
            or rec.dst_ip in ips
            or rec.arp_sender_ip in ips
            or rec.arp_target_ip in ips
        ):
            return True
        macs = self.macs
        return bool(macs) and (rec.src_mac in macs or rec.dst_mac in macs)
