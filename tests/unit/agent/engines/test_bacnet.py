"""BACnet/IP engine: each type triggers on its traffic and stays quiet on near misses."""

from __future__ import annotations

from scapy.packet import Raw

from otwatch.agent.decode.layers.bacnet import (
    BVLC,
    NPDU,
    BACnetConfirmedRequest,
    BACnetError,
    BACnetSimpleACK,
    ReinitializeDeviceRequest,
    encode_password,
)
from otwatch.agent.engines.bacnet import BacnetEngine
from tests.factories import CLIENT, SERVER, Case, EngineRun, case_tests, of_type, types, udp

AV1 = b"\x0c" + ((2 << 22) | 1).to_bytes(4, "big")  # [0] analog-value 1
PRESENT_VALUE = b"\x19\x55"  # [1] property 85


def message(apdu, *, src: str = CLIENT, dst: str = SERVER, npdu=None, **bvlc):
    return udp(src, dst, 47808, 47808, bytes(BVLC(**bvlc) / (npdu or NPDU()) / apdu))


def confirmed(service: int, params: bytes = b""):
    return message(BACnetConfirmedRequest(service_choice=service, invoke_id=7) / Raw(params))


def reinitialize(state: int):
    apdu = BACnetConfirmedRequest(service_choice=20) / ReinitializeDeviceRequest(
        reinitialized_state=state, password_part=encode_password(b"secret")
    )
    return message(apdu)


READ = confirmed(12, AV1 + PRESENT_VALUE)
WRITE = confirmed(15, AV1 + PRESENT_VALUE + b"\x3e\x44\x42\x28\x00\x00\x3f")
ERROR = message(BACnetError(service_choice=15) / Raw(b"\x91\x02\x91\x28"), src=SERVER, dst=CLIENT)
ACK = message(BACnetSimpleACK(service_choice=15), src=SERVER, dst=CLIENT)
BAD_LENGTH = udp(CLIENT, SERVER, 47808, 47808, bytes(BVLC(length=40) / NPDU() /
                                                     BACnetConfirmedRequest()))  # fmt: skip


CASES = [
    Case("controller_reset", [reinitialize(0)], [reinitialize(2)]),
    Case("unauthorized_bacnet_object_access", [WRITE], [READ]),
    Case("unauthorized_bacnet_route",
         [message(BACnetConfirmedRequest() / Raw(AV1 + PRESENT_VALUE),
                  npdu=NPDU(dnet_present=1, dnet=5, dadr=b"\x07"))], [READ]),
    Case("illegal_bacnet_message", [BAD_LENGTH], [READ]),
    Case("illegal_protocol_version", [message(BACnetConfirmedRequest(), npdu=NPDU(version=2))],
         [READ]),
    Case("bacnet_operation_failed", [ERROR], [ACK]),
    Case("excessive_malformed_packets_in_a_single_session", [BAD_LENGTH, BAD_LENGTH],
         [BAD_LENGTH, READ]),
]  # fmt: skip


def engine_run() -> EngineRun:
    return EngineRun(BacnetEngine, settings={"bacnet": {"enable": ("*",)}})


test_triggers, test_quiet = case_tests(CASES, engine_run, learn=[READ])


def test_reinitialize_message_and_fields() -> None:
    (det,) = of_type(engine_run().feed([reinitialize(1)]), "controller_reset")
    assert det.message == (
        f"{CLIENT} sent BACnet ReinitializeDevice (warmstart, with a password) to {SERVER}: "
        "the device restarts"
    )
    assert det.fields["protocol"] == "bacnet"


def test_object_access_names_the_object() -> None:
    run = engine_run()
    run.learn([READ])
    (det,) = of_type(run.feed([WRITE]), "unauthorized_bacnet_object_access")
    assert "WriteProperty (analog-value 1)" in det.message


def test_error_names_class_and_code() -> None:
    (det,) = of_type(engine_run().feed([ERROR]), "bacnet_operation_failed")
    assert det.fields["source_address"] == SERVER
    assert "property / write-access-denied" in det.message


def test_npdu_without_apdu_is_illegal() -> None:
    bare = udp(CLIENT, SERVER, 47808, 47808, bytes(BVLC() / NPDU()))
    assert "illegal_bacnet_message" in types(engine_run().feed([bare]))
