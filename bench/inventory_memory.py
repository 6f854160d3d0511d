"""Memory of the device inventory: RSS growth of a ``DeviceTable`` holding N devices.

Each device has one MAC, two services, five peers (address strings shared, as the header
decoder's cache shares them) and, for one device in ten, five identification facts. Prints
the growth in MB (10^6 bytes) against the issue's bound of +150 MB for 100,000 devices.

Usage: ``python bench/inventory_memory.py [--devices N]``
"""

from __future__ import annotations

import argparse
import gc

from otwatch.agent.inventory.table import DeviceTable

BOUND_MB = 150


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    n = parser.parse_args().devices
    peers = [f"10.9.9.{p}" for p in range(5)]
    facts = [("vendor", "Rockwell Automation/Allen-Bradley"), ("model", "1756-ENBT/A"),
             ("firmware", "4.003"), ("serial", "0x00524d8e"), ("product_code", "58")]  # fmt: skip
    gc.collect()
    before = rss_mb()
    table = DeviceTable(n)
    for i in range(n):
        ip = f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}"
        dev = table.device(ip, f"02:00:00:{i >> 16:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}", i)
        table.add_service(dev, "server:tcp/502/modbus")
        table.add_service(dev, "client:dns")
        for peer in peers:
            table.add_peer(dev, peer)
        if i % 10 == 0:
            for field, value in facts:
                table.add_fact(dev, field, "enip-listidentity", f"{value}", i)
    gc.collect()
    grown = rss_mb() - before
    verdict = "within" if grown <= BOUND_MB * n / 100_000 else "OVER"
    print(f"{n:,} devices: +{grown:.0f} MB RSS ({verdict} the +{BOUND_MB} MB per 100,000 bound)")


if __name__ == "__main__":
    main()
