"""Invalid SMB Message (DoublePulsar Backdoor Implant) from packets."""

from __future__ import annotations

from otwatch.agent.decode.smb import SMB1_TRANS2
from otwatch.agent.engines.doublepulsar import DoublePulsarEngine
from tests.factories import T0, A, B, EngineRun, netstore, tcp
from tests.unit.agent.decode.test_smb import smb1, trans2_request

__all__ = ["netstore"]
ENGINES = (DoublePulsarEngine,)


def test_implant_answers_with_mid_plus_16(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [
            tcp(A, B, 50000, 445, payload=trans2_request(65, 0x000E)),
            tcp(B, A, 445, 50000, payload=smb1(SMB1_TRANS2, 0xC0000002, 0x98, mid=81)),
        ],
        start_ns=T0,
    )
    [det] = run.of("invalid_smb_message_doublepulsar_backdoor_implant")
    assert (det.fields["source_address"], det.fields["reply_mid"]) == (B, 81)


def test_clean_server_and_unrelated_replies_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [
            tcp(A, B, 50000, 445, payload=trans2_request(65, 0x000E)),
            tcp(B, A, 445, 50000, payload=smb1(SMB1_TRANS2, 0xC0000002, 0x98, mid=65)),
            tcp(B, A, 445, 50001, payload=smb1(SMB1_TRANS2, 0, 0x98, mid=81)),  # no request seen
            tcp(A, B, 50002, 445, payload=trans2_request(3, 0x0001)),  # FIND_FIRST2
            tcp(B, A, 445, 50002, payload=smb1(SMB1_TRANS2, 0, 0x98, mid=19)),
        ],
        start_ns=T0,
    )
    assert run.types() == {}
