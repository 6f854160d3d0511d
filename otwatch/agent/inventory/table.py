"""The sensor's device table in memory: what was seen since the last flush.

One :class:`Device` per IP address (per MAC for devices that speak no IP, such as PROFINET
IO devices before they get an address). The table is bounded (``max_devices``; the least
recently touched device goes first, and since its facts were flushed nothing is lost but
the traffic counted since the last flush). It holds *changes*: counters since the last
flush and the facts, names, protocols, peers and MACs seen. :meth:`DeviceTable.take_dirty`
hands them to the store, which merges them into the stored rows (``store/devices.py``); so
the table starts empty after a restart and several worker processes can each keep one.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

__all__ = ["DEFAULT_MAX_DEVICES", "MAX_PEERS", "Device", "DeviceTable", "device_key"]

DEFAULT_MAX_DEVICES = 100_000
MAX_PEERS = 256
"""Peers remembered per device (the stored peer count saturates there too)."""
_MAX_NAMES = 16
_FACT_REFRESH_NS = 3_600_000_000_000
"""An unchanged fact is written again (its time moves) at most once an hour."""
_MAX_SERVICES = 64


def device_key(ip: str | None, mac: str | None) -> str:
    """The device's key: its IP address, else ``mac:<mac>``."""
    return ip if ip is not None else f"mac:{mac}"


class Device:
    """One device's changes since the last flush."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "dirty",
        "evidence",
        "facts",
        "first_ns",
        "ip",
        "key",
        "last_ns",
        "mac",
        "macs",
        "names",
        "packets_in",
        "packets_out",
        "peers",
        "services",
        "vlan",
    )

    def __init__(self, key: str, ip: str | None, ts_ns: int) -> None:
        self.key, self.ip = key, ip
        self.mac: str | None = None
        self.vlan: int | None = None
        self.first_ns = self.last_ns = ts_ns
        self.packets_in = self.packets_out = self.bytes_in = self.bytes_out = 0
        # Created on first use: most devices have one MAC, few names or facts (memory).
        self.macs: dict[str, list[int]] | None = None
        """MAC -> [first_ns, last_ns] seen with this IP."""
        self.names: dict[str, tuple[str, int]] | None = None
        """name -> (source, ts_ns): DNS answers, DHCP, mDNS, LLMNR."""
        self.facts: dict[tuple[str, str], tuple[str, int]] | None = None
        """(field, source) -> (value, ts_ns) from the device's own identification."""
        self.services: list[str] = []
        """``server:<transport>/<port>/<app>`` and ``client:<app>`` entries (a list: they
        are few and compact; only first packets of flow directions look them up)."""
        self.peers: list[str] = []
        self.evidence: dict[str, int] | None = None
        """Role evidence tag -> ts_ns (e.g. ``program_transfer``, ``dnp3_master``)."""
        self.dirty = True

    def touch(self, ts_ns: int) -> None:
        if ts_ns > self.last_ns:
            self.last_ns = ts_ns
        elif ts_ns < self.first_ns:
            self.first_ns = ts_ns
        self.dirty = True


class DeviceTable:
    """Bounded table of :class:`Device` keyed by IP (or ``mac:``)."""

    def __init__(self, max_devices: int = DEFAULT_MAX_DEVICES) -> None:
        self.max_devices = max_devices
        self._devices: OrderedDict[str, Device] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._devices)

    def get(self, key: str) -> Device | None:
        return self._devices.get(key)

    def device(self, ip: str | None, mac: str | None, ts_ns: int) -> Device:
        """The device at ``ip`` (or ``mac`` without an IP), created on first sight."""
        key = device_key(ip, mac)
        devices = self._devices
        dev = devices.get(key)
        if dev is None:
            if len(devices) >= self.max_devices:
                devices.popitem(last=False)
                self.evicted += 1
            dev = devices[key] = Device(key, ip, ts_ns)
        else:
            devices.move_to_end(key)
        if mac is not None:
            dev.mac = mac
            macs = dev.macs
            if macs is None:
                macs = dev.macs = {}
            seen = macs.get(mac)
            if seen is None:
                macs[mac] = [ts_ns, ts_ns]
            elif ts_ns > seen[1]:
                seen[1] = ts_ns
        dev.touch(ts_ns)
        return dev

    def add_fact(self, dev: Device, field: str, source: str, value: str, ts_ns: int) -> None:
        facts = dev.facts
        if facts is None:
            facts = dev.facts = {}
        old = facts.get((field, source))
        if old is None or old[0] != value or ts_ns - old[1] > _FACT_REFRESH_NS:
            facts[(field, source)] = (value, ts_ns)
            dev.dirty = True

    def add_name(self, dev: Device, name: str, source: str, ts_ns: int) -> None:
        names = dev.names
        if names is None:
            names = dev.names = {}
        if name not in names and len(names) < _MAX_NAMES:
            names[name] = (source, ts_ns)
            dev.dirty = True

    def add_service(self, dev: Device, service: str) -> None:
        services = dev.services
        if service not in services and len(services) < _MAX_SERVICES:
            services.append(service)
            dev.dirty = True

    def add_peer(self, dev: Device, peer: str) -> None:
        peers = dev.peers
        if len(peers) < MAX_PEERS and peer not in peers:
            peers.append(peer)

    def add_evidence(self, dev: Device, tag: str, ts_ns: int) -> None:
        evidence = dev.evidence
        if evidence is None:
            evidence = dev.evidence = {}
        if tag not in evidence:
            evidence[tag] = ts_ns
            dev.dirty = True

    def count(self, ip: str, packets_out: int, bytes_out: int, packets_in: int,
              bytes_in: int) -> None:  # fmt: skip
        """Fold traffic counters (from the flow table) into a known device."""
        dev = self._devices.get(ip)
        if dev is not None:
            dev.packets_out += packets_out
            dev.bytes_out += bytes_out
            dev.packets_in += packets_in
            dev.bytes_in += bytes_in
            dev.dirty = True

    def take_dirty(self) -> list[dict[str, Any]]:
        """The devices changed since the last call, as plain records for the store (which
        adds the counters and unions the sets into the stored row); counters restart."""
        out = []
        for dev in self._devices.values():
            if not dev.dirty:
                continue
            out.append(
                {
                    "key": dev.key, "ip": dev.ip, "mac": dev.mac, "vlan": dev.vlan,
                    "first_ns": dev.first_ns, "last_ns": dev.last_ns,
                    "packets_in": dev.packets_in, "packets_out": dev.packets_out,
                    "bytes_in": dev.bytes_in, "bytes_out": dev.bytes_out,
                    "macs": {mac: list(span) for mac, span in (dev.macs or {}).items()},
                    "names": dict(dev.names or {}), "facts": dict(dev.facts or {}),
                    "services": sorted(dev.services), "peers": sorted(dev.peers),
                    "evidence": dict(dev.evidence or {}),
                }
            )  # fmt: skip
            dev.packets_in = dev.packets_out = dev.bytes_in = dev.bytes_out = 0
            dev.dirty = False
        return out
