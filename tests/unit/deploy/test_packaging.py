"""The distribution: a wheel with the data files, a working console script, pinned ranges."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from otwatch import __version__

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build from a copy of the sources (an in-tree build would write build/ into the repo)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "otwatch", src / "otwatch",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(out), "-q"],
        capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    [built] = out.glob("otwatch-*.whl")
    return built


def test_wheel_contains_data_files_and_console_script(wheel):
    assert wheel.name == f"otwatch-{__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "otwatch/alerts/catalog/alert_types.toml" in names
    assert "otwatch/py.typed" in names
    for tree in ("otwatch/agent/store/migrations", "otwatch/central/store/migrations"):
        assert f"{tree}/env.py" in names and f"{tree}/script.py.mako" in names
        shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith(f"{tree}/versions/")}
        on_disk = {p.name for p in (REPO / tree / "versions").glob("*.py")}
        assert on_disk and shipped == on_disk, tree
    entry_points = (
        zipfile.ZipFile(wheel).read(f"otwatch-{__version__}.dist-info/entry_points.txt").decode()
    )
    assert re.search(r"^otwatch = otwatch\.cli\.main:main$", entry_points, re.M)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_installed_wheel_works_outside_the_checkout(wheel, tmp_path):
    """The wheel's files alone (dependencies from this environment) run the CLI end to end:
    version, the catalog TOML, and a store migrated with the shipped Alembic scripts."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)], check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTWATCH_")}
    env["PYTHONPATH"] = str(target)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "otwatch.cli", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)  # fmt: skip

    where = subprocess.run([sys.executable, "-c", "import otwatch; print(otwatch.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr
    assert run("--version").stdout.strip() == f"otwatch, version {__version__}"
    catalog = run("catalog", "list", "--format", "json")
    assert catalog.returncode == 0 and len(catalog.stdout) > 1000
    # a command that writes creates and migrates the store (read-only ones never create it)
    data = str(tmp_path / "data")
    listed = run("--data-dir", data, "rules", "custom", "list", "--format", "json")
    assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stderr
    assert run("--data-dir", data, "alerts", "list").returncode == 0
    assert (tmp_path / "data" / "otwatch.db").exists()


def test_console_script_in_this_environment():
    exe = Path(sys.executable).with_name("otwatch")
    if not exe.exists():
        pytest.skip("otwatch is not installed in this environment (pip install -e .)")
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"otwatch, version {__version__}"


def test_runtime_dependencies_have_compatible_ranges():
    """Every dependency has a lower and an upper bound (no surprise major upgrade)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    for extra, values in project.get("optional-dependencies", {}).items():
        if extra != "test":
            deps += values
    for dep in deps:
        assert re.search(r">=\s*[\d.]+", dep) and re.search(r"<\s*[\d.]+", dep), dep
