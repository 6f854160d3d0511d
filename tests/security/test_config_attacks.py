"""Hostile configuration and input files through the real CLI: deep nesting, booleans that are
not booleans, a remote ``central.listen`` that ``config check`` used to pass while ``central
run`` refused it, and password files other users may read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from otwatch.cli.main import cli
from otwatch.config import ConfigError, load_config
from otwatch.nesting import MAX_DEPTH
from otwatch.secretfile import SecretFileError, check_secret_file

DEEP = 5000


def invoke(*args: str, env: dict[str, str] | None = None):
    clean = {k: None for k in os.environ if k.startswith("OTWATCH_")}
    return CliRunner().invoke(cli, list(args), env={**clean, **(env or {})})


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otwatch.toml"
    path.write_text(text)
    return path


def assert_one_error(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    errors = [line for line in result.output.splitlines() if line.lower().startswith("error: ")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * DEEP + "]" * DEEP,
        "a = " + "{b = " * DEEP + "1" + "}" * DEEP,
        "[engines.port_scan]\nx = " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    ],
    ids=["arrays-5000", "inline-tables-5000", "arrays-just-too-deep"],
)
def test_deeply_nested_toml_is_one_error(tmp_path, text):
    path = config_file(tmp_path, text + "\n")
    result = invoke("--config", str(path), "config", "check")
    assert_one_error(result, str(path), f"nested more than {MAX_DEPTH} levels deep")
    assert "RecursionError" not in result.output


def test_deeply_nested_toml_through_the_entry_point(tmp_path):
    path = config_file(tmp_path, "a = " + "[" * DEEP + "]" * DEEP + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTWATCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "otwatch.cli", "--config", str(path), "config", "check"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert f"nested more than {MAX_DEPTH} levels deep" in result.stderr


def test_deeply_nested_baseline_import_is_one_error(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    data = tmp_path / "data"
    result = invoke("--data-dir", str(data), "baseline", "import", str(path))
    assert_one_error(result, str(path), "invalid JSON")
    assert "RecursionError" not in result.output


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ('[capture]\npromisc = "no"', {}, "capture.promisc"),
        ("[capture]\npromisc = 0", {}, "capture.promisc"),
        ('[metrics]\nallow_remote = "yes"', {}, "metrics.allow_remote"),
        ("[central]\nallow_remote = 1", {}, "central.allow_remote"),
        ("", {"OTWATCH_CAPTURE_PROMISC": "no"}, "OTWATCH_CAPTURE_PROMISC"),
        ("", {"OTWATCH_METRICS_ALLOW_REMOTE": "1"}, "OTWATCH_METRICS_ALLOW_REMOTE"),
    ],
)
def test_booleans_are_only_true_or_false(tmp_path, text, env, key):
    path = config_file(tmp_path, text + "\n")
    result = invoke("--config", str(path), "config", "check", env=env)
    assert_one_error(result, key, "is not true or false", "write true or false (no quotes)")


def test_toml_and_environment_booleans_are_read(tmp_path):
    path = config_file(tmp_path, "[capture]\npromisc = false\n")
    assert load_config(path, {}).capture.promisc is False
    assert load_config(path, {"OTWATCH_CAPTURE_PROMISC": "true"}).capture.promisc is True


REMOTE = '[central]\nlisten = "0.0.0.0:8080"\n'


def test_config_check_and_central_run_refuse_the_same_remote_listen(tmp_path):
    path = config_file(tmp_path, REMOTE)
    checked = invoke("--config", str(path), "config", "check")
    line = assert_one_error(checked, "central.listen", "refusing to serve the API on 0.0.0.0")
    # central run stops at the same check, before it opens a database or a socket
    db = tmp_path / "central.db"
    run = invoke("--config", str(path), "central", "run", "--db", str(db))
    assert_one_error(run, "central.listen", "refusing to serve the API on 0.0.0.0")
    assert not db.exists()
    assert line


def test_remote_listen_passes_the_check_only_when_allowed(tmp_path):
    path = config_file(tmp_path, REMOTE.replace("[central]\n", "[central]\nallow_remote = true\n"))
    assert invoke("--config", str(path), "config", "check").exit_code == 0
    bad = config_file(tmp_path, '[central]\nlisten = "8080"\n')
    assert_one_error(invoke("--config", str(bad), "config", "check"), "HOST:PORT")


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o620, 0o666, 0o601])
def test_password_file_other_users_may_read_is_refused(tmp_path, mode):
    secret = tmp_path / "sync.password"
    secret.write_text("s3cret\n")
    secret.chmod(mode)
    path = config_file(tmp_path, f'[sync]\nusername = "s1"\npassword_file = "{secret}"\n')
    result = invoke("--config", str(path), "config", "check")
    assert_one_error(result, "sync.password_file", f"mode {mode:04o}", "chmod 0600")
    assert "s3cret" not in result.output
    # the command-line option applies the same rule, before any connection is tried
    run = invoke(
        "--config", str(config_file(tmp_path, "")), "sync", "run",
        "--broker", "mqtt://127.0.0.1:9", "--username", "s1", "--password-file", str(secret),
    )  # fmt: skip
    assert run.exit_code == 2 and f"mode {mode:04o}" in run.output


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640])
def test_private_password_file_is_accepted(tmp_path, mode):
    secret = tmp_path / "sync.password"
    secret.write_text("s3cret\n")
    secret.chmod(mode)
    path = config_file(tmp_path, f'[sync]\nusername = "s1"\npassword_file = "{secret}"\n')
    assert load_config(path, {}).sync.read_password() == "s3cret"


def test_group_readable_password_file_warns_when_the_group_has_other_members(
    tmp_path, monkeypatch, caplog
):
    import grp

    secret = tmp_path / "pw"
    secret.write_text("x\n")
    secret.chmod(0o640)
    real = grp.getgrgid(secret.stat().st_gid)
    shared = grp.struct_group((real.gr_name, "x", real.gr_gid, ["mallory"]))
    monkeypatch.setattr(grp, "getgrgid", lambda gid: shared)
    check_secret_file(secret)
    assert "whose members mallory can read it too" in caplog.text
    secret.chmod(0o660)
    with pytest.raises(SecretFileError, match="mode 0660"):
        check_secret_file(secret)
    with pytest.raises(ConfigError):
        load_config(config_file(tmp_path, f'[sync]\npassword_file = "{secret}"\n'), {})


def test_nesting_guard_accepts_what_otwatch_writes(tmp_path):
    from otwatch.nesting import load_json

    assert load_json(json.dumps({"a": [[{"b": [1]}]]})) == {"a": [[{"b": [1]}]]}
