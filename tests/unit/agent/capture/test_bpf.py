"""Capture filters: compiled by libpcap (or tcpdump), attached to a real socket."""

from __future__ import annotations

import shutil
import socket

import pytest

from otwatch.agent.capture import bpf
from otwatch.agent.capture.bpf import BpfError, attach_filter, compile_filter
from otwatch.agent.capture.config import SizeError, parse_size


def test_libpcap_and_tcpdump_compile_the_same_program(monkeypatch):
    program = compile_filter("tcp port 502")
    assert program[0] == (0x28, 0, 0, 12)  # ldh [12]: the ethertype
    assert program[-1][0] == 0x06  # ret
    if shutil.which("tcpdump"):

        def no_libpcap(*_args):
            raise ImportError("no libpcap")

        monkeypatch.setattr(bpf, "_compile_libpcap", no_libpcap)
        assert compile_filter("tcp port 502") == program


@pytest.mark.parametrize("use_tcpdump", [False, True])
def test_a_bad_expression_says_why(monkeypatch, use_tcpdump):
    if use_tcpdump:
        if not shutil.which("tcpdump"):
            pytest.skip("tcpdump missing")
        monkeypatch.setattr(bpf, "_compile_libpcap", lambda *a: (_ for _ in ()).throw(ImportError))
    with pytest.raises(BpfError, match=r"invalid capture filter 'tcp portx 5': syntax error"):
        compile_filter("tcp portx 5")


def test_an_attached_filter_drops_in_the_kernel():
    """Classic BPF works on any socket: a UDP socket on loopback shows the effect."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.3)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            attach_filter(rx, [(0x06, 0, 0, 0)])  # ret #0: drop everything
            tx.sendto(b"dropped", rx.getsockname())
            with pytest.raises(TimeoutError):
                rx.recv(100)
            attach_filter(rx, [(0x06, 0, 0, 0xFFFF)])  # ret #65535: accept
            tx.sendto(b"kept", rx.getsockname())
            assert rx.recv(100) == b"kept"


def test_an_invalid_program_is_refused_by_the_kernel():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(BpfError, match="cannot attach capture filter"):
            attach_filter(sock, [(0xFFFF, 0, 0, 0)])
        with pytest.raises(BpfError, match="empty"):
            attach_filter(sock, [])


@pytest.mark.parametrize(
    ("text", "value"),
    [("4096", 4096), ("64k", 65536), ("64KiB", 65536), ("1.5G", 3 << 29), ("2 MB", 2 << 20)],
)
def test_sizes(text, value):
    assert parse_size(text) == value


def test_bad_size():
    with pytest.raises(SizeError, match="invalid size 'lots'"):
        parse_size("lots")
