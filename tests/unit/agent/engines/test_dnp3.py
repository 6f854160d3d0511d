"""DNP3 engine: each type triggers on its traffic and stays quiet on near misses."""

from __future__ import annotations

from scapy.packet import Raw

from otwatch.agent.decode.layers.dnp3 import (
    DNP3,
    DNP3ApplicationRequest,
    DNP3ApplicationResponse,
    DNP3Transport,
)
from otwatch.agent.engines.dnp3 import Dnp3Engine
from tests.factories import (
    CLIENT,
    SERVER,
    Case,
    EngineRun,
    case_tests,
    of_type,
    to_client,
    to_server,
    types,
)

CLASS_123 = bytes.fromhex("3c02063c03063c0406")
CLASS_0 = bytes.fromhex("3c0106")
CROB = bytes.fromhex("0c012801000000") + bytes.fromhex("0301640000006400000000")  # g12v1 q 0x28


def link(app, *, master: bool) -> bytes:
    user = DNP3Transport(fir=1, fin=1) / app
    return bytes(DNP3(dir=int(master), prm=1, function=4, destination=10 if master else 1,
                      source=1 if master else 10, user_data=user))  # fmt: skip


def request(fc: int, objects: bytes = b"", con: bool = False):
    return to_server(20000, link(DNP3ApplicationRequest(function=fc, con=int(con)) / Raw(objects),
                                 master=True))  # fmt: skip


def response(iin: int = 0, objects: bytes = b"", fc: int = 129):
    app = DNP3ApplicationResponse(function=fc, iin1=iin & 0xFF, iin2=iin >> 8) / Raw(objects)
    return to_client(20000, link(app, master=False))


def iin(label: str) -> int:
    """``"2.3"`` → the bit of IIN2.3 in the 16-bit IIN word (IIN1 low, IIN2 high)."""
    octet, bit = label.split(".")
    return 1 << (int(bit) + (8 if octet == "2" else 0))


def corrupt(pkt):
    data = bytearray(bytes(pkt[Raw].load))
    data[-3] ^= 0xFF  # inside the last user-data block: its CRC no longer matches
    return to_server(20000, bytes(data))


POLL = [request(1, CLASS_123), response()]


CASES = [
    Case("unpermitted_usage_of_dnp3_function_code", [request(5, CROB)], [request(1, CLASS_123)]),
    Case("suspicion_of_illegal_integrity_scan", [request(1, CLASS_0)], [request(1, CLASS_0)],
         quiet_learn=[*POLL, request(1, CLASS_0)]),
    Case("outstation_restarted", [request(13)], [request(1, CLASS_123)]),
    Case("outstation_restarts_frequently", [request(13), request(13)], [request(13)]),
    Case("excessive_restart_rate_of_an_outstation", [request(14)] * 10, [request(14)] * 9),
    Case("controller_reset", [request(14)], [request(13)]),
    Case("controller_stop", [request(18)], [request(17)]),
    Case("abnormal_termination_of_applications", [request(18)] * 20, [request(18)] * 19),
    Case("initiation_of_an_obsolete_function_code_initialize_data", [request(15)],
         [request(16)]),
    Case("initiation_of_an_obsolete_function_code_save_config", [request(19)],
         [request(20, CLASS_123)]),
    Case("usage_of_a_reserved_function_code", [request(40)], [request(33)]),
    Case("master_requested_an_application_layer_confirmation",
         [request(1, CLASS_123, con=True)], [request(1, CLASS_123)]),
    Case("illegal_dnp3_operation", [corrupt(request(5, CROB))], [request(5, CROB)]),
    Case("excessive_malformed_packets_in_a_single_session",
         [corrupt(request(5, CROB)), corrupt(request(5, CROB))],
         [corrupt(request(5, CROB)), request(5, CROB)]),
    Case("function_code_not_supported_by_outstation", [response(iin("2.0"))],
         [response(iin("1.4"))]),
    Case("unknown_object_sent_to_outstation", [response(iin("2.1"))], [response(iin("2.0"))]),
    Case("incorrect_parameter_sent_to_outstation", [response(iin("2.2"))],
         [response(iin("2.1"))]),
    Case("event_buffer_overflow_in_outstation", [response(iin("2.3"))], [response(iin("2.4"))]),
    Case("continuous_event_buffer_overflow_at_outstation", [response(iin("2.3"))] * 3,
         [response(iin("2.3"))] * 2),
    Case("outstations_corrupted_configuration_detected", [response(iin("2.5"))],
         [response(iin("2.4"))]),
    Case("usage_of_reserved_status_flags_iin", [response(iin("2.6"))], [response(iin("2.5"))]),
    Case("suspicion_of_hardware_problems_in_outstation", [response(iin("1.6"))],
         [response(iin("1.5"))]),
    Case("unpermitted_usage_of_internal_indication_iin", [response(iin("1.5"))],
         [response(iin("1.4"))], learn=[*POLL, response(iin("1.4"))]),
    Case("master_slave_authentication_error", [response(0, bytes.fromhex("78075b01"), fc=131)],
         [response(0, bytes.fromhex("010200000100"))]),
]  # fmt: skip


def engine_run() -> EngineRun:
    return EngineRun(Dnp3Engine, settings={"dnp3": {"enable": ("*",)}})


test_triggers, test_quiet = case_tests(CASES, engine_run, learn=POLL)


def test_cold_restart_alert_names_the_outstation_as_source() -> None:
    run = engine_run()
    (det,) = of_type(run.feed([request(13)]), "outstation_restarted")
    assert det.fields["source_address"] == SERVER
    assert det.fields["destination_address"] == CLIENT
    assert "Cold Restart (function 13)" in det.message
    assert det.fields["link_address"] == 10


def test_restart_seen_in_iin_after_a_clean_response() -> None:
    dets = engine_run().feed([response(0), response(iin("1.7")), response(iin("1.7"))])
    assert types(dets)["outstation_restarted"] == 1
    # first sight of the flag says nothing about when the outstation restarted
    assert "outstation_restarted" not in types(engine_run().feed([response(iin("1.7"))]))


def test_frame_split_across_segments_and_mid_stream_start() -> None:
    whole = bytes(request(13)[Raw].load)
    first, second = whole[:7], whole[7:]
    tail = bytes(request(1, CLASS_123)[Raw].load)[5:]  # the end of a frame we never saw start
    run = engine_run()
    packets = [to_server(20000, tail), to_server(20000, first), to_server(20000, second)]
    dets = run.feed(packets)
    assert types(dets) == {"outstation_restarted": 1, "unpermitted_usage_of_dnp3_function_code": 1}


def test_two_frames_in_one_segment() -> None:
    both = bytes(request(13)[Raw].load) + bytes(request(18)[Raw].load)
    dets = engine_run().feed([to_server(20000, both)])
    assert {"outstation_restarted", "controller_stop"} <= set(types(dets))


def test_application_fragment_in_two_transport_segments() -> None:
    app = bytes(DNP3ApplicationRequest(function=5)) + CROB
    segments = [(0x40, app[:8]), (0x81, app[8:])]  # FIR seq 0, then FIN seq 1
    frames = b"".join(
        bytes(DNP3(dir=1, prm=1, function=4, destination=10, source=1,
                   user_data=Raw(bytes([header]) + body)))
        for header, body in segments
    )  # fmt: skip
    dets = engine_run().feed([to_server(20000, frames)])
    assert types(dets) == {"unpermitted_usage_of_dnp3_function_code": 1}
    assert "Direct Operate" in dets[0].message


def test_garbage_after_sync_is_illegal_but_never_raises() -> None:
    run = engine_run()
    dets = run.feed([request(1, CLASS_123), to_server(20000, b"\x00" * 40)])
    assert "illegal_dnp3_operation" in types(dets)
