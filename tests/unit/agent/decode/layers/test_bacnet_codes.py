"""BACnet code tables are consistent with each other."""

from __future__ import annotations

from otwatch.agent.decode.layers import bacnet_codes as codes


def test_npdu_functions_are_bvlc_functions() -> None:
    assert set(codes.BVLC_FUNCTIONS) >= codes.NPDU_FUNCTIONS
    assert codes.BVLC_FUNCTIONS[0x0A] == "Original-Unicast-NPDU"


def test_service_and_reason_tables() -> None:
    assert codes.CONFIRMED_SERVICES[20] == "ReinitializeDevice"
    assert codes.CONFIRMED_SERVICES[17] == "DeviceCommunicationControl"
    assert codes.UNCONFIRMED_SERVICES[8] == "Who-Is"
    assert set(codes.PDU_TYPES) == set(range(8))
    assert codes.REJECT_REASONS[9] == "unrecognized-service"
    assert codes.REINITIALIZED_STATES[0] == "coldstart"
    for table in (codes.CONFIRMED_SERVICES, codes.UNCONFIRMED_SERVICES, codes.ERROR_CODES):
        assert len(set(table.values())) == len(table)
