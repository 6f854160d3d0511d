"""The forwarding daemon's systemd unit verifies and stays confined."""

from __future__ import annotations

from tests.unit.deploy.test_systemd_units import (
    directives,
    needs_analyze,
    one,
    runnable_copy,
    verify,
)

UNIT = "otwatch-forwarding.service"


@needs_analyze
def test_unit_verifies(tmp_path):
    assert verify(runnable_copy(UNIT, tmp_path)) == []


def test_network_no_capability_store_and_its_log_directory_only():
    assert one(UNIT, "ExecStart").endswith("otwatch forwarding run")
    assert one(UNIT, "CapabilityBoundingSet") == ""
    assert "AF_PACKET" not in one(UNIT, "RestrictAddressFamilies")
    assert directives(UNIT)[("Service", "ReadWritePaths")] == ["/var/lib/otwatch"]
    assert one(UNIT, "LogsDirectory") == "otwatch-forwarding"
    assert one(UNIT, "ProtectSystem") == "strict"
