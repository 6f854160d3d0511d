"""Scapy layers for industrial protocols that Scapy lacks (DNP3, S7comm, BACnet/IP).

Importing a module binds its layer to the protocol's ports. Engines do not dissect every
packet with these layers: they triage with ``struct`` and dissect only the packets they must
inspect deeply, through ``cache.DissectCache``.
"""
