"""``otwatch.fileout``: commit, discard, races and the no-hard-link fallback on real files."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from otwatch.fileout import OutputError, check_output, open_output


def temps(directory) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_written_only_when_the_block_completes(tmp_path):
    out = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), open_output(out) as f:
        f.write(b"half")
        assert not out.exists() and len(temps(tmp_path)) == 1
        assert stat.S_IMODE(os.stat(tmp_path / temps(tmp_path)[0]).st_mode) == 0o600
        raise RuntimeError("the producer failed")
    assert not out.exists() and temps(tmp_path) == []
    with open_output(out) as f:
        f.write(b"whole")
    assert out.read_bytes() == b"whole" and temps(tmp_path) == []


def test_a_file_created_meanwhile_is_not_overwritten(tmp_path):
    out = tmp_path / "race.bin"
    with pytest.raises(OutputError, match="exists; use --force"), open_output(out) as f:
        f.write(b"mine")
        out.write_bytes(b"theirs")  # someone else created the name while we wrote
    assert out.read_bytes() == b"theirs" and temps(tmp_path) == []


def test_a_link_planted_meanwhile_is_not_followed_even_with_force(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    out = tmp_path / "out.bin"
    with pytest.raises(OutputError, match="symbolic link"), open_output(out, force=True) as f:
        f.write(b"mine")
        out.symlink_to(victim)
    assert victim.read_bytes() == b"keep" and out.is_symlink()


def test_filesystem_without_hard_links_still_refuses_an_existing_file(tmp_path, monkeypatch):
    def no_links(*_args, **_kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "out.txt"
    with open_output(out, text=True) as f:
        f.write("a,b\r\n")
    assert out.read_bytes() == b"a,b\r\n"  # text mode: no newline translation
    with pytest.raises(OutputError, match="exists"), open_output(out, text=True) as f:
        f.write("x")
    assert out.read_bytes() == b"a,b\r\n"


def test_mode_follows_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        with open_output(tmp_path / "private") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600


def test_parent_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is not a directory"):
        check_output(tmp_path / "file" / "out")
