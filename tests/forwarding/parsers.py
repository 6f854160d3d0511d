"""Strict parsers for what the forwarding tests receive: RFC 5424, CEF 0 and LEEF 2.0.

Strict means an escape the format does not define, a raw line break, or an unescaped ``=``
inside a CEF extension value is an error, so a formatter bug cannot hide behind a lenient
reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEY = re.compile(r"[A-Za-z0-9_]+=")


class ParseError(ValueError):
    pass


@dataclass
class Syslog:
    pri: int
    timestamp: str
    hostname: str
    app: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]]
    msg: str


def parse_rfc5424(line: str) -> Syslog:
    m = re.match(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) ", line)
    if not m:
        raise ParseError(f"not an RFC 5424 header: {line[:80]!r}")
    pos = m.end()
    sd: dict[str, dict[str, str]] = {}
    if line[pos] == "-":
        pos += 1
    else:
        while pos < len(line) and line[pos] == "[":
            end_id = re.compile(r"[^ \]=\"]+").match(line, pos + 1)
            if not end_id:
                raise ParseError("bad SD-ID")
            sd_id, pos = end_id.group(), end_id.end()
            params: dict[str, str] = {}
            while line[pos] == " ":
                pm = re.compile(r' ([^ =\]"]+)="').match(line, pos)
                if not pm:
                    raise ParseError(f"bad SD-PARAM at {line[pos : pos + 20]!r}")
                pos = pm.end()
                value = []
                while line[pos] != '"':
                    if line[pos] == "\\" and line[pos + 1] in '"\\]':
                        value.append(line[pos + 1])
                        pos += 2
                    elif line[pos] in '"]':
                        raise ParseError("unescaped character in SD value")
                    else:
                        value.append(line[pos])
                        pos += 1
                params[pm.group(1)] = "".join(value)
                pos += 1
            if line[pos] != "]":
                raise ParseError("SD-ELEMENT not closed")
            sd[sd_id] = params
            pos += 1
    if line[pos : pos + 1] not in (" ", ""):
        raise ParseError("no space before MSG")
    return Syslog(int(m.group(1)), *m.groups()[1:], sd=sd, msg=line[pos + 1 :])  # type: ignore[misc]


def _unescape(text: str, allowed: dict[str, str], where: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] not in allowed:
                raise ParseError(f"undefined escape in {where}: {text[i : i + 2]!r}")
            out.append(allowed[text[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass
class Cef:
    version: str
    vendor: str
    product: str
    device_version: str
    signature: str
    name: str
    severity: int
    ext: dict[str, str]


def parse_cef(line: str) -> Cef:
    if "\n" in line or "\r" in line:
        raise ParseError("raw line break in a CEF message")
    if not line.startswith("CEF:"):
        raise ParseError(f"not CEF: {line[:40]!r}")
    fields: list[str] = []
    start, i = 0, 0
    while len(fields) < 7:
        if i >= len(line):
            raise ParseError("CEF header has fewer than 7 fields")
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == "|":
            fields.append(_unescape(line[start:i], {"\\": "\\", "|": "|"}, "CEF header"))
            start = i + 1
        i += 1
    ext_text = line[start:]
    ext: dict[str, str] = {}
    # Key starts: an unescaped 'key=' at the start or after a space.
    starts = []
    for m in _KEY.finditer(ext_text):
        if (m.start() == 0 or ext_text[m.start() - 1] == " ") and not _escaped(
            ext_text, m.end() - 1
        ):
            starts.append(m)
    for n, m in enumerate(starts):
        end = starts[n + 1].start() - 1 if n + 1 < len(starts) else len(ext_text)
        raw = ext_text[m.end() : end]
        for j, ch in enumerate(raw):
            if ch == "=" and not _escaped(raw, j):
                raise ParseError(f"unescaped '=' in value of {m.group()[:-1]}")
        ext[m.group()[:-1]] = _unescape(
            raw, {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}, f"CEF value {m.group()}"
        )
    return Cef(fields[0][4:], *fields[1:6], int(fields[6]), ext)  # type: ignore[misc]


def _escaped(text: str, index: int) -> bool:
    slashes = 0
    while index - 1 - slashes >= 0 and text[index - 1 - slashes] == "\\":
        slashes += 1
    return slashes % 2 == 1


@dataclass
class Leef:
    version: str
    vendor: str
    product: str
    product_version: str
    event_id: str
    attrs: dict[str, str]


def parse_leef(line: str) -> Leef:
    if "\n" in line or "\r" in line:
        raise ParseError("raw line break in a LEEF message")
    if not line.startswith("LEEF:2.0|"):
        raise ParseError(f"not LEEF 2.0: {line[:40]!r}")
    parts: list[str] = []
    start, i = 0, 0
    while len(parts) < 6:
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == "|":
            parts.append(_unescape(line[start:i], {"\\": "\\", "|": "|"}, "LEEF header"))
            start = i + 1
        i += 1
    delimiter = {"x09": "\t", "0x09": "\t"}.get(parts[5], parts[5])
    if len(delimiter) != 1:
        raise ParseError(f"bad LEEF delimiter {parts[5]!r}")
    attrs = {}
    for item in line[start:].split(delimiter):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParseError(f"bad LEEF attribute {item[:40]!r}")
        attrs[key] = _unescape(
            value, {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}, f"LEEF value {key}"
        )
    return Leef(parts[0][5:], *parts[1:5], attrs=attrs)  # type: ignore[misc]
