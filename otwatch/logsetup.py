"""Logging for the CLI and the daemons: one line per event on standard error.

Under systemd, standard error goes to the journal. ``text`` lines then start with a syslog
priority prefix (``<4>``) so ``journalctl -p warning`` filters by level and journald adds the
timestamp; on a terminal they start with an ISO 8601 UTC time instead. ``json`` lines use
Elastic Common Schema names (``@timestamp``, ``log.level``, ``message``, ``service.name``,
``event.dataset``, ``error.*``, ...) so Filebeat, Vector or Logstash need no mapping, plus
every ``extra=`` field.
Newlines inside a message or a traceback are escaped, so one event is always one line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "JsonFormatter", "TextFormatter", "configure_logging"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")

_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record: whatever is not a standard LogRecord attribute."""
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS and k[0] != "_"}


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def stderr_is_journal(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default stderr) is systemd's journal stream (``$JOURNAL_STREAM``)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        fd = (stream or sys.stderr).fileno()
        st = os.fstat(fd)
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


class TextFormatter(logging.Formatter):
    """``[<prio>|<time> ]LEVEL logger: message key=value …`` on one line."""

    def __init__(self, *, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{record.levelname} {record.name}: {record.getMessage()}"]
        parts.extend(f"{k}={_text_value(v)}" for k, v in _extras(record).items())
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        line = _one_line(" ".join(parts))
        if self.journal:
            return f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{line}"
        return f"{_iso(record.created)} {line}"


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=')) else text


ECS_VERSION = "8.11.0"


class JsonFormatter(logging.Formatter):
    """One ECS JSON object per line (dotted top-level keys, as the ECS logging libraries
    write them); the ECS fields come first and ``extra=`` fields cannot override them."""

    def __init__(self, *, service: str = "otwatch") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "@timestamp": _iso(record.created),
            "log.level": record.levelname.lower(),
            "message": record.getMessage(),
            "ecs.version": ECS_VERSION,
            "service.name": self.service,
            "event.dataset": f"{self.service}.log",
            "log.logger": record.name,
            "log.origin.function": record.funcName,
            "log.origin.file.name": record.filename,
            "log.origin.file.line": record.lineno,
            "process.pid": record.process,
            "process.thread.name": record.threadName,
        }
        if record.exc_info:
            exc_type, exc, _tb = record.exc_info
            data["error.type"] = exc_type.__name__ if exc_type else ""
            data["error.message"] = str(exc)
            data["error.stack_trace"] = self.formatException(record.exc_info)
        elif record.stack_info:
            data["error.stack_trace"] = self.formatStack(record.stack_info)
        for key, value in _extras(record).items():
            data.setdefault(key, value)
        return json.dumps(data, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (click's test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: str = "warning", fmt: str = "text", service: str = "otwatch") -> None:
    """Route every logger to one stderr handler; safe to call again (a daemon does, after
    reading its configuration). ``service`` is JSON's ``service.name`` (a daemon's unit
    name, e.g. ``otwatch-agent``)."""
    if level.lower() not in LOG_LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LOG_LEVELS)}")
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
    handler = _StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service=service))
    else:
        handler.setFormatter(TextFormatter(journal=stderr_is_journal()))
    root.addHandler(handler)
    root.setLevel(level.upper())
