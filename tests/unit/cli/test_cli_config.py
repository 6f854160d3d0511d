"""``otwatch config check|show`` and the daemons' gate ``require_config``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from otwatch.cli.config import require_config
from otwatch.cli.context import CliContext
from otwatch.cli.main import OtwatchGroup, cli
from otwatch.config import ConfigError

BAD = '[sensor]\nid = "no spaces allowed"\n[sync]\nbroker = "mqtt:/x"\npassword = "hunter2"\n'


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "otwatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
    )


@pytest.fixture
def bad(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    return path


def test_check_ok(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text('[sensor]\nid = "s1"\n')
    result = run("--config", str(path), "config", "check")
    assert result.returncode == 0 and result.stdout == f"ok: {path} is valid\n"


def test_check_lists_every_problem_and_exits_1(bad):
    result = run("--config", str(bad), "config", "check")
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"{bad}: 3 problems"
    assert [line.split(":")[1].strip() for line in lines[1:]] == [
        "sensor.id",
        "sync.broker",
        "sync.password",
    ]
    assert all(line.startswith("error: ") and " — fix: " in line for line in lines[1:])
    assert "hunter2" not in result.stderr


def test_check_reads_env_overrides_and_otwatch_config(tmp_path, bad):
    result = run("config", "check", env={"OTWATCH_CONFIG": str(bad), "OTWATCH_SENSOR_ID": "s-2"})
    assert result.returncode == 1 and "sensor.id" not in result.stderr
    assert "OTWATCH_SENSOR_ID" not in result.stderr and "sync.broker" in result.stderr


def test_show_prints_effective_toml_and_json(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    secret.chmod(0o600)
    path = tmp_path / "c.toml"
    path.write_text(
        f'[sync]\npassword_file = "{secret}"\n[central]\ndb = "postgresql://ot@db.example/ot"\n'
        "[engines.port_scan]\nthreshold = 40\n"
    )
    result = run("--config", str(path), "config", "show", env={"OTWATCH_SENSOR_ZONE": "cell-b"})
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith(f"# effective configuration: {path} + environment")
    assert 'zone = "cell-b"' in text and "[engines.port_scan]\nthreshold = 40" in text
    assert f'password_file = "{secret}"' in text and "hunter2" not in text
    assert "# cert_file = (not set)" in text
    import tomllib

    assert tomllib.loads(text)["sync"]["broker"] == "mqtts://127.0.0.1:8883"

    data = json.loads(run("--config", str(path), "config", "show", "--format", "json").stdout)
    assert data["source"] == str(path) and data["engines"]["settings"] == {
        "port_scan": {"threshold": 40}
    }


def test_show_of_a_bad_config_is_one_error_line(bad):
    result = run("--config", str(bad), "config", "show")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: invalid config")


def _daemon_group(config_path, started: list[str]) -> click.Group:
    @click.group(cls=OtwatchGroup)
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.obj = CliContext(config_path=config_path, log_level=None, log_format=None)

    @root.command()
    def daemon() -> None:
        cfg = require_config()
        started.append(cfg.sensor.id)

    return root


def test_require_config_stops_a_daemon_before_it_starts(bad):
    started: list[str] = []
    result = CliRunner().invoke(_daemon_group(bad, started), ["daemon"])
    assert result.exit_code == 1 and started == []
    assert "invalid configuration" in result.output and "sync.broker" in result.output


def test_require_config_returns_config_and_applies_log_settings(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[sensor]\nid = "s9"\n[log]\nlevel = "debug"\nformat = "json"\n')
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    started: list[str] = []
    try:
        result = CliRunner().invoke(_daemon_group(path, started), ["daemon"])
        assert result.exit_code == 0, result.output
        assert started == ["s9"] and root.level == logging.DEBUG
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_require_config_error_is_an_otwatch_error(bad):
    ctx = click.Context(cli, obj=CliContext(config_path=bad))
    with pytest.raises(ConfigError) as info:
        require_config(ctx)
    assert len(info.value.problems) == 3


def test_version():
    from otwatch import __version__

    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"otwatch, version {__version__}"
