"""Capture filters: a tcpdump expression compiled to classic BPF and attached to a socket.

Compilation uses libpcap through Scapy (``scapy.arch.common.compile_filter``, no root needed)
and falls back to ``tcpdump -ddd`` when libpcap cannot be loaded. The program is attached
with ``SO_ATTACH_FILTER``, so the kernel drops unwanted frames before they reach the ring.

The code is compiled for frames with VLAN tags in line (as in a pcap file). On Linux the
kernel usually strips the outer tag before the filter runs, so ``vlan`` primitives may not
match live traffic; filter on addresses and ports instead.
"""

from __future__ import annotations

import ctypes
import shutil
import socket
import struct
import subprocess

from otwatch.agent.capture.pcapfile import MAX_CAPLEN
from otwatch.errors import OtwatchError

__all__ = ["BpfError", "Instruction", "attach_filter", "compile_filter"]

Instruction = tuple[int, int, int, int]
"""``(code, jt, jf, k)`` of one classic BPF instruction."""

SO_ATTACH_FILTER = 26
_RET_K = 0x06
_DLT_NAMES = {1: "EN10MB", 101: "RAW", 113: "LINUX_SLL", 276: "LINUX_SLL2"}


class BpfError(OtwatchError):
    """A capture filter does not compile or cannot be attached."""


def compile_filter(expression: str, linktype: int = 1) -> list[Instruction]:
    """Compile ``expression`` for ``linktype`` (1 = Ethernet) into BPF instructions.

    An accepting ``ret #k`` keeps ``k`` bytes of the frame; whatever snap length the compiler
    assumed, ours is the full frame (``MAX_CAPLEN``), so the ring gets whole frames.
    """
    try:
        program = _compile_libpcap(expression, linktype)
    except ImportError:
        program = _compile_tcpdump(expression, linktype)
    return [
        (code, jt, jf, MAX_CAPLEN if code == _RET_K and k else k) for code, jt, jf, k in program
    ]


def _compile_libpcap(expression: str, linktype: int) -> list[Instruction]:
    from scapy.arch.common import compile_filter as scapy_compile
    from scapy.arch.common import free_filter
    from scapy.error import Scapy_Exception

    try:
        program = scapy_compile(expression, linktype=linktype)
    except Scapy_Exception as exc:
        raise BpfError(f"invalid capture filter {expression!r}: {_reason(str(exc))}") from None
    try:
        return [
            (ins.code, ins.jt, ins.jf, ins.k)
            for ins in (program.bf_insns[i] for i in range(program.bf_len))
        ]
    finally:
        free_filter(program)


def _reason(text: str) -> str:
    """libpcap's own words, without Scapy's wrapper: ``syntax error``."""
    if "(" in text and text.endswith(")"):
        inner = text[text.rfind("(") + 1 : -1]
        return inner.removeprefix("can't parse filter expression: ")
    return text


def _compile_tcpdump(expression: str, linktype: int) -> list[Instruction]:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise BpfError("cannot compile capture filters: neither libpcap nor tcpdump is installed")
    dlt = _DLT_NAMES.get(linktype, "EN10MB")
    result = subprocess.run(
        [tcpdump, "-ddd", "-y", dlt, expression],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1:] or ["tcpdump failed"]
        message = reason[0].removeprefix("tcpdump: ")
        message = message.removeprefix("can't parse filter expression: ")
        raise BpfError(f"invalid capture filter {expression!r}: {message}")
    lines = result.stdout.split("\n")
    count = int(lines[0])
    return [_instruction(line) for line in lines[1 : 1 + count]]


def _instruction(line: str) -> Instruction:
    """One ``code jt jf k`` line of ``tcpdump -ddd``."""
    code, jt, jf, k = (int(v) for v in line.split())
    return code, jt, jf, k


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


def attach_filter(sock: socket.socket, program: list[Instruction]) -> None:
    """Attach ``program`` to ``sock`` (Linux ``SO_ATTACH_FILTER``)."""
    if not program:
        raise BpfError("empty BPF program")
    array = (_SockFilter * len(program))(*(_SockFilter(*ins) for ins in program))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; } (native alignment)
    fprog = struct.pack("HL", len(program), ctypes.addressof(array))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError as exc:
        raise BpfError(f"cannot attach capture filter: {exc.strerror}") from None
