"""HTTP/1.x message heads (RFC 9112): request or status line and header fields.

Only the first segment of a message is decoded, and at most ``MAX_HEAD`` bytes of it: enough
for the request line, status and the usual headers. The result also says what a detector
needs about the head's shape (header count, longest header line, the first illegal byte or
line). :func:`parse_http` never raises and returns None for anything that does not start like
an HTTP message. The last result is memoised by payload identity, so several engines looking
at one packet decode it once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MAX_HEAD", "HttpHead", "looks_like_request", "parse_http"]

MAX_HEAD = 16_384
MAX_HEADERS_KEPT = 64
_REQUEST = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,24}) (\S{1,65536}) HTTP/(\d\.\d)\r?$")
_STATUS = re.compile(rb"HTTP/(\d\.\d) (\d{3})(?: (.*))?\r?$")
_METHOD_START = re.compile(rb"[A-Z]{3,12} ")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_memo: tuple[bytes | None, HttpHead | None] = (None, None)


@dataclass(frozen=True, slots=True)
class HttpHead:
    is_request: bool
    method: str | None
    target: str | None
    """The request target as sent (path and query), decoded as Latin-1."""
    version: str
    status: int | None
    headers: tuple[tuple[str, str], ...]
    """Up to ``MAX_HEADERS_KEPT`` (lower-case name, value) pairs, in order."""
    header_count: int
    longest_header: int
    """Length in bytes of the longest header line seen."""
    start_line_length: int
    complete: bool
    """The empty line ending the head was seen in the decoded bytes."""
    illegal: str | None
    """Why the head is malformed (control byte in a value, bad field name, line without a
    colon), or None."""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def path(self) -> str | None:
        if self.target is None:
            return None
        target = self.target
        if "://" in target:  # absolute form (proxy requests): keep the path part
            slash = target.find("/", target.find("://") + 3)
            target = target[slash:] if slash >= 0 else "/"
        return target.split("?", 1)[0]


def looks_like_request(payload: bytes) -> bool:
    """Cheap check: does the segment start with an upper-case method token and a space?"""
    return _METHOD_START.match(payload) is not None


def parse_http(payload: bytes) -> HttpHead | None:
    """Decode the head at the start of ``payload`` (request or response), or None."""
    global _memo
    if _memo[0] is payload:
        return _memo[1]
    result = _parse(payload)
    _memo = (payload, result)
    return result


def _parse(payload: bytes) -> HttpHead | None:
    if len(payload) < 12:
        return None
    data = payload[:MAX_HEAD]
    end = data.find(b"\n")
    first = data if end < 0 else data[:end]
    status = method = target = None
    if first.startswith(b"HTTP/"):
        match = _STATUS.match(first)
        if match is None:
            return None
        version, status = match.group(1).decode(), int(match.group(2))
    else:
        match = _REQUEST.match(first)
        if match is None:
            return None
        method = match.group(1).decode("ascii")
        target = match.group(2).decode("latin-1")
        version = match.group(3).decode()
    headers: list[tuple[str, str]] = []
    count = longest = 0
    illegal = None
    complete = False
    if end >= 0:
        lines = data[end + 1 :].split(b"\n")
        cut = len(data) < len(payload) or not data.endswith(b"\n")
        for index, raw in enumerate(lines):
            last = index == len(lines) - 1
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if not last:
                    complete = True
                break
            if last and cut:  # a partial line at the end of the decoded bytes
                longest = max(longest, len(raw))
                break
            count += 1
            longest = max(longest, len(raw) + 1)
            colon = line.find(b":")
            if colon <= 0:
                if illegal is None:
                    illegal = (
                        "folded header line" if line[:1] in (b" ", b"\t") else "line without colon"
                    )
                continue
            name = line[:colon]
            value = line[colon + 1 :].strip(b" \t")
            if illegal is None:
                if _TOKEN.fullmatch(name) is None:
                    illegal = f"illegal character in header name {name[:40]!r}"
                elif _BAD_VALUE.search(value) is not None:
                    illegal = f"control character in header {name.decode('latin-1')!r}"
            if len(headers) < MAX_HEADERS_KEPT:
                headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))
    return HttpHead(
        is_request=method is not None,
        method=method,
        target=target,
        version=version,
        status=status,
        headers=tuple(headers),
        header_count=count,
        longest_header=longest,
        start_line_length=len(first) + 1,
        complete=complete,
        illegal=illegal,
    )
