"""DNP3 object headers: headers of header-only requests, and the qualifier, range and size
checks that find malformed requests (as in the corpus's DNP3-Malformed capture)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from otwatch.agent.decode.layers.dnp3_objects import check_objects, object_headers

CROB = bytes.fromhex("0c012801000000") + bytes(11)  # g12v1, count 1 with a 2-octet index


def test_headers_of_a_class_poll() -> None:
    assert object_headers(bytes.fromhex("3c02063c03063c0406")) == [
        (60, 2, 6),
        (60, 3, 6),
        (60, 4, 6),
    ]


def test_well_formed_requests_pass() -> None:
    assert check_objects(5, CROB) is None
    assert check_objects(1, bytes.fromhex("3c0106")) is None
    assert check_objects(2, bytes.fromhex("5001000707") + b"\x00") is None  # clear IIN1.7


def test_malformed_requests_are_explained() -> None:
    assert "shorter" in check_objects(5, CROB[:-1])
    assert "reserved qualifier 0xed" in check_objects(21, b"\x3c\x04\xed")
    assert "stop 0 before start 1" in check_objects(1, b"\x01\x02\x00\x01\x00")
    assert "truncated object header" in check_objects(5, CROB + b"\x00\x00")


def test_no_verdict_where_sizes_are_unknown() -> None:
    assert check_objects(25, b"\x46\x03\x5b\x01\x00") is None  # file objects
    assert check_objects(5, b"\x63\x01\x07\x01" + bytes(3)) is None  # unknown size


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 40), st.binary(max_size=80))
def test_never_raises(function: int, data: bytes) -> None:
    check_objects(function, data)
    object_headers(data)
