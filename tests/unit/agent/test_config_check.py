"""The sensor's checks of the configuration (BPF filter, ``[engines]``): run by ``config
check``, ``agent run`` and ``agent replay``; central's loader never imports them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otwatch.agent.config_check import check_sensor_config, load_sensor_config, sensor_problems
from otwatch.config import ConfigError, load_config

SENSOR_ONLY_PROBLEMS = (
    '[capture]\nbpf = "tcp portx 5"\n'
    '[engines]\ndisabled = ["nope"]\n'
    "[engines.port_scan]\nthreshold = 0\n"
    '[engines.arp_scan]\nenable = ["port_scan_detected"]\n'
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otwatch.toml"
    path.write_text(text)
    return path


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OTWATCH_")}


def test_the_loader_leaves_bpf_and_engines_to_the_sensor(tmp_path):
    cfg = load_config(write(tmp_path, SENSOR_ONLY_PROBLEMS), {})  # what central does
    assert cfg.capture.bpf == "tcp portx 5" and cfg.engines.disabled == ("nope",)
    found = sensor_problems(cfg)
    assert [p.split(":")[0] for p in found] == [
        "capture.bpf",
        "engines.disabled",
        "engines.port_scan",
        "engines.arp_scan",
    ]
    assert all(" — fix: " in p and "\n" not in p for p in found)
    with pytest.raises(ConfigError) as info:
        check_sensor_config(cfg)
    assert info.value.problems == found and info.value.source == str(tmp_path / "otwatch.toml")


def test_a_good_filter_and_engine_tables_pass(tmp_path):
    text = '[capture]\nbpf = " tcp port 502 "\n[engines.port_scan]\nthreshold = 40\n'
    cfg = load_sensor_config(write(tmp_path, text), {})
    assert cfg.capture.bpf == "tcp port 502" and sensor_problems(cfg) == []


def test_a_problem_set_from_the_environment_names_its_variable(tmp_path):
    env = {"OTWATCH_CAPTURE_BPF": "udp portx 1", "OTWATCH_ENGINES_DISABLED": "port_scan,nope"}
    with pytest.raises(ConfigError) as info:
        load_sensor_config(write(tmp_path, ""), env)
    bpf, disabled = info.value.problems
    assert bpf.startswith("OTWATCH_CAPTURE_BPF (capture.bpf): invalid capture filter")
    assert disabled.startswith("OTWATCH_ENGINES_DISABLED (engines.disabled): no engine named")


def test_central_loads_the_file_without_importing_the_sensor(tmp_path):
    path = write(tmp_path, SENSOR_ONLY_PROBLEMS)
    code = (
        "import sys\n"
        "from otwatch.config import load_config\n"
        f"cfg = load_config({str(path)!r}, {{}})\n"
        "import otwatch.central.node\n"
        "sensor = sorted(m for m in sys.modules if m.startswith('otwatch.agent'))\n"
        "print(cfg.engines.disabled, sensor)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=clean_env()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "('nope',) []\n"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "otwatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[capture]\nbpf = "tcp portx 5"\n', "capture.bpf"),
        ("[engines.nope]\nx = 1\n", "engines.nope"),
        ('[engines.port_scan]\nthreshold = "many"\n', "engines.port_scan.threshold"),
    ],
)
def test_config_check_and_the_agent_refuse_it_in_one_line(tmp_path, text, key):
    path = write(tmp_path, text)
    check = cli("--config", str(path), "config", "check")
    assert check.returncode == 1
    assert check.stderr.splitlines()[1].startswith(f"error: {key}: ")
    for command in (
        ["agent", "run", "-i", "lo"],
        ["agent", "replay", str(tmp_path / "none.pcap")],
    ):
        data = tmp_path / command[1]
        started = cli("--config", str(path), "--data-dir", str(data), *command)
        assert started.returncode == 1, started.stderr
        [line] = started.stderr.splitlines()
        assert line.startswith("error: invalid configuration") and f"{key}: " in line
        assert not data.exists()  # stopped before it opened the store
