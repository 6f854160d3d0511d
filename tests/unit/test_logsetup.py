"""``otwatch.logsetup``: one line per event, text or JSON, journald priorities."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from otwatch.logsetup import configure_logging


class _Stderr:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def captured(capsys, monkeypatch):
    """What the handler writes to (the current) stderr; the root logger is restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    yield _Stderr(capsys)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_json_lines_carry_ecs_fields_and_extras(captured):
    configure_logging("info", "json", service="otwatch-sync")
    log = logging.getLogger("otwatch.test")
    log.debug("hidden")
    log.warning("sensor %s lost %d frames", "s1", 3, extra={"interface": "eth1", "dropped": 3})
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("failed", extra={"message_id": 7})
    lines = captured.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert list(first)[:3] == ["@timestamp", "log.level", "message"]
    assert first["log.level"] == "warning" and first["log.logger"] == "otwatch.test"
    assert first["message"] == "sensor s1 lost 3 frames"
    assert first["service.name"] == "otwatch-sync" and first["event.dataset"] == "otwatch-sync.log"
    assert first["ecs.version"].startswith("8.") and first["process.pid"] == os.getpid()
    assert first["log.origin.function"] == "test_json_lines_carry_ecs_fields_and_extras"
    assert (first["interface"], first["dropped"]) == ("eth1", 3)
    assert first["@timestamp"].endswith("Z") and "T" in first["@timestamp"]
    assert (second["error.type"], second["error.message"]) == ("ValueError", "boom\nsecond line")
    assert "ValueError: boom\nsecond line" in second["error.stack_trace"]
    assert second["message_id"] == 7 and "error.type" not in first


def test_reserved_keys_cannot_be_overridden_by_extras(captured):
    configure_logging("info", "json")
    fake = {"log.level": "fake", "@timestamp": "fake", "service.name": "fake"}
    logging.getLogger("x").info("hello", extra=fake)
    data = json.loads(captured.getvalue())
    assert (data["log.level"], data["message"], data["service.name"]) == (
        "info",
        "hello",
        "otwatch",
    )
    assert data["@timestamp"] != "fake"


def test_text_is_one_line_per_event_with_time_on_a_terminal(captured):
    configure_logging("debug", "text")
    log = logging.getLogger("otwatch.cap")
    log.info("two\nlines", extra={"iface": "eth 1"})
    try:
        int("x")
    except ValueError:
        log.error("crashed", exc_info=True)
    lines = captured.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith('INFO otwatch.cap: two\\nlines iface="eth 1"')
    assert lines[0][:4].isdigit() and lines[0].split(" ")[0].endswith("Z")
    assert "ValueError: invalid literal" in lines[1] and "Traceback" in lines[1]


def test_text_under_journald_has_syslog_priorities(tmp_path, monkeypatch):
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    with open(tmp_path / "journal", "w+") as fake_journal:
        st = os.fstat(fake_journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        monkeypatch.setattr(sys, "stderr", fake_journal)
        try:
            configure_logging("info", "text")
            logging.getLogger("otwatch.agent").warning("ring full")
            logging.getLogger("otwatch.agent").error("capture stopped")
        finally:
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
        fake_journal.seek(0)
        assert fake_journal.read().splitlines() == [
            "<4>WARNING otwatch.agent: ring full",
            "<3>ERROR otwatch.agent: capture stopped",
        ]


def test_reconfiguring_replaces_the_handler(captured):
    configure_logging("info", "text")
    configure_logging("info", "json")
    logging.getLogger("x").info("once")
    assert len(captured.getvalue().splitlines()) == 1


def test_bad_level_or_format_is_refused():
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", "text")
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml")


def test_cli_root_options_select_format_and_level(tmp_path):
    """A fresh store migrates at INFO (Alembic): JSON lines on stderr, stdout untouched."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTWATCH_")}
    # a command that writes: it creates the store (read-only commands never do)
    cmd = [sys.executable, "-m", "otwatch.cli", "--log-format", "json", "--log-level", "info",
           "--data-dir", str(tmp_path / "data"),
           "baseline", "stop"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("learning mode") and "{" not in result.stdout
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert events and all(e["log.level"] == "info" for e in events)
    assert any(e["log.logger"].startswith("alembic") for e in events)
    assert {e["service.name"] for e in events} == {"otwatch"}

    quiet = subprocess.run(
        [*cmd[:3], "--data-dir", str(tmp_path / "data2"), "baseline", "stop"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_a_daemon_logs_under_its_unit_name(captured, monkeypatch):
    """``require_config`` names the service after the daemon group (``agent run``)."""
    import click
    from click.testing import CliRunner

    from otwatch.cli.config import require_config

    @click.group()
    def agent() -> None:
        pass

    @agent.command()
    def run() -> None:
        require_config()
        logging.getLogger("otwatch.agent").warning("started")

    monkeypatch.setenv("OTWATCH_LOG_FORMAT", "json")
    result = CliRunner().invoke(agent, ["run"], catch_exceptions=False)
    assert result.exit_code == 0
    [event] = [json.loads(line) for line in result.stderr.splitlines() if "started" in line]
    assert event["service.name"] == "otwatch-agent" and event["log.level"] == "warning"
