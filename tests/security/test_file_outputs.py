"""Attacks on every command that writes a file the operator names (``-o PATH``).

Each writer runs through the real CLI (click's runner) against a real sensor store with a
PCAP ring, or against a real central API served by uvicorn on loopback: a planted
``PATH.part`` symlink, ``-o /dev/full``, a symlink or FIFO as the target, an existing file
without ``--force``, a missing parent directory, and ``-o -``.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from otwatch.cli.main import cli
from tests.centralapi import add_alerts, pcap_chunks, snapshot, token
from tests.integration.central_procs import sensor_with_pcaps
from tests.integration.mqtt_broker import free_port

PCAP_MAGIC = (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
VICTIM = b"precious data that must survive\n"


@pytest.fixture(scope="module")
def sensor_dir(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("sensor")
    sensor_with_pcaps(data).close()
    return data


@pytest.fixture(scope="module")
def central(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A real central API (uvicorn, 127.0.0.1) whose store holds alert 1-s1 with its PCAP
    already pulled; yields (url, admin token)."""
    import uvicorn

    from otwatch.central.api import LocalCommander, create_app
    from otwatch.central.node import CentralNode
    from otwatch.central.pcapstore import PcapStore
    from otwatch.central.server import _EmbeddedServer
    from otwatch.central.store.db import open_central_store
    from tests.factories import T0

    work = tmp_path_factory.mktemp("central")
    store = open_central_store(f"sqlite:///{work / 'central.db'}")
    add_alerts(store, "s1", [snapshot(1, message='=HYPERLINK("http://203.0.113.9")')])
    pcaps = PcapStore(store, work / "pcap")
    engine = CentralNode(store, pcap_sink=pcaps)
    app = create_app(store, LocalCommander(engine), pcaps, progress=engine.pcap_progress)
    admin = token(store, "alice", "admin")
    port = free_port()
    server = _EmbeddedServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "central API did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    # the PCAP of 1-s1 arrives from the sensor once; later asks are answered from the cache
    from fastapi.testclient import TestClient

    rid = (
        TestClient(app)
        .post("/api/v1/alerts/1-s1/pcap", headers={"Authorization": f"Bearer {admin}"})
        .json()["request_id"]
    )
    for topic, payload in pcap_chunks(b"\xd4\xc3\xb2\xa1" + bytes(2000), rid, "s1", 1):
        engine.on_message(topic, payload, T0)
    yield url, admin
    server.should_exit = True
    thread.join(10)
    store.close()


Writer = Callable[[str], list[str]]


def _writers(sensor: Path, central: tuple[str, str] | None) -> dict[str, Writer]:
    local = ["--data-dir", str(sensor)]
    writers: dict[str, Writer] = {
        "pcap get": lambda out: [*local, "pcap", "get", "1", "-o", out],
        "alerts pcap": lambda out: [*local, "alerts", "pcap", "1", "-o", out],
        "alerts export": lambda out: [*local, "alerts", "export", "-o", out],
        "baseline export": lambda out: [*local, "baseline", "export", "-o", out],
    }
    if central is not None:
        remote = ["--central", central[0], "--token", central[1]]
        writers["central alerts export"] = lambda out: [*remote, "alerts", "export", "-o", out]
        writers["central alerts pcap"] = lambda out: [*remote, "alerts", "pcap", "1-s1", "-o", out]
    return writers


WRITERS = [
    "pcap get",
    "alerts pcap",
    "alerts export",
    "baseline export",
    "central alerts export",
    "central alerts pcap",
]


@pytest.fixture(params=WRITERS)
def writer(request, sensor_dir) -> Writer:
    central = request.getfixturevalue("central") if request.param.startswith("central") else None
    return _writers(sensor_dir, central)[request.param]


def run(args: list[str], *extra: str):
    return CliRunner().invoke(cli, [*args, *extra], catch_exceptions=False)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_planted_part_symlink_is_not_followed(writer, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(VICTIM)
    out = tmp_path / "out.bin"
    (tmp_path / "out.bin.part").symlink_to(victim)
    result = run(writer(str(out)))
    assert result.exit_code == 0, result.output
    assert victim.read_bytes() == VICTIM
    assert out.is_file() and not out.is_symlink() and out.stat().st_size > 0
    assert os.readlink(tmp_path / "out.bin.part") == str(victim)
    assert leftovers(tmp_path) == []


def test_dev_full_stays_a_device(writer):
    before = os.stat("/dev/full")
    result = run(writer("/dev/full"), "--force")
    assert result.exit_code == 1
    assert "refusing to write /dev/full: it is a character device" in result.output
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_symlink_and_fifo_targets_are_refused_even_with_force(writer, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(VICTIM)
    link = tmp_path / "link.out"
    link.symlink_to(victim)
    result = run(writer(str(link)), "--force")
    assert result.exit_code == 1 and "it is a symbolic link" in result.output
    assert link.is_symlink() and victim.read_bytes() == VICTIM
    fifo = tmp_path / "fifo.out"
    os.mkfifo(fifo)
    result = run(writer(str(fifo)), "--force")  # would block forever if it were opened
    assert result.exit_code == 1 and "it is a FIFO" in result.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert leftovers(tmp_path) == []


def test_existing_file_needs_force(writer, tmp_path):
    out = tmp_path / "existing.out"
    out.write_bytes(VICTIM)
    result = run(writer(str(out)))
    assert result.exit_code == 1
    assert f"{out} exists; use --force to overwrite it" in result.output
    assert out.read_bytes() == VICTIM
    forced = run(writer(str(out)), "--force")
    assert forced.exit_code == 0, forced.output
    assert out.read_bytes() != VICTIM and out.stat().st_size > 0
    assert leftovers(tmp_path) == []


def test_missing_parent_is_not_created(writer, tmp_path):
    out = tmp_path / "no" / "such" / "dir.out"
    result = run(writer(str(out)))
    assert result.exit_code == 1
    assert f"directory {out.parent} does not exist" in result.output
    assert not (tmp_path / "no").exists()


def test_dash_writes_standard_output(writer, tmp_path, request):
    result = CliRunner().invoke(cli, writer("-"), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    name = request.node.callspec.params["writer"]
    data = result.stdout_bytes
    if name.endswith("pcap") or name == "pcap get":
        assert data[:4] in PCAP_MAGIC and len(data) > 24
    elif name == "baseline export":
        assert json.loads(data)["format"]
    else:
        assert data.startswith(b"id,") or data.splitlines()[0].count(b",") > 5
    assert not (tmp_path / "-").exists() and not Path("-").exists()


def test_written_file_has_the_umask_mode(sensor_dir, tmp_path):
    out = tmp_path / "mode.pcap"
    old = os.umask(0o027)
    try:
        result = run(_writers(sensor_dir, None)["pcap get"](str(out)))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_demo_deletes_only_a_directory_it_made(tmp_path):
    """``otwatch demo --workdir DIR`` recreates DIR: it must not delete someone's directory."""
    precious = tmp_path / "etc"
    precious.mkdir()
    (precious / "passwd").write_text("root:x:0:0\n")
    result = run(["demo", "--no-install", "--workdir", str(precious)])
    assert result.exit_code == 1 and "is not a directory the demo made" in result.output
    assert (precious / "passwd").read_text() == "root:x:0:0\n"
    link = tmp_path / "link"
    link.symlink_to(precious)
    result = run(["demo", "--no-install", "--workdir", str(link)])
    assert result.exit_code == 1 and "is not a directory" in result.output
    assert (precious / "passwd").exists()
