"""Writing a file the operator names (``-o PATH``) without following links or clobbering.

Every command that writes a file goes through :func:`open_output`. The data goes to a new
temporary file created exclusively in the target's directory (``O_EXCL | O_NOFOLLOW``, mode
0600, so a planted name or link is never followed and nobody reads a half-written file),
is flushed to disk, given its final mode and renamed into place. The target must be absent
(or a regular file with ``force``); a symbolic link, directory, device or FIFO is refused
even with ``force``. A missing parent directory is an error, never created. ``-`` is
standard output. On any error the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from otwatch.errors import OtwatchError

__all__ = ["STDOUT", "OutputError", "check_output", "is_stdout", "open_output"]

STDOUT = "-"
"""The output name that means standard output."""

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


class OutputError(OtwatchError):
    """The output file cannot or may not be written; nothing was changed."""


def is_stdout(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path) == STDOUT


def check_output(path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Refuse a target :func:`open_output` would refuse, before any expensive work starts."""
    if is_stdout(path):
        return
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        what = "does not exist" if not parent.exists() else "is not a directory"
        raise OutputError(f"cannot write {target}: directory {parent} {what}")
    _check_target(target, force)


def _check_target(target: Path, force: bool) -> None:
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror}") from None
    for test, kind in _KINDS:
        if test(info.st_mode):
            raise OutputError(f"refusing to write {target}: it is {kind}, not a regular file")
    if not force:
        raise OutputError(f"{target} exists; use --force to overwrite it")


def _final_mode() -> int:
    """0666 less the process umask: the mode ``open()`` would have given a new file. Read
    from /proc (Linux ≥ 4.7) so that threads of a daemon never see the umask flipped."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _create_temp(target: Path) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(16):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise OutputError(f"cannot write {target}: no free temporary name in {target.parent}")


def _commit(tmp: Path, target: Path, force: bool) -> None:
    """Move the finished temporary file to ``target``: atomically refusing an existing
    name without ``force`` (a hard link fails if the name exists), else replacing only a
    regular file."""
    _check_target(target, force)
    if not force:
        try:
            os.link(tmp, target, follow_symlinks=False)
        except FileExistsError:
            raise OutputError(f"{target} exists; use --force to overwrite it") from None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
        else:
            os.unlink(tmp)
            return
    os.replace(tmp, target)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def open_output(
    path: str | os.PathLike[str], *, force: bool = False, text: bool = False
) -> Iterator[IO]:
    """A file object for the output ``path`` (``-``: standard output), committed when the
    ``with`` block ends without an exception and discarded otherwise.

    ``text`` gives a UTF-8 text stream with no newline translation (what the csv module
    wants); else a binary stream.
    """
    if is_stdout(path):
        stream: IO = sys.stdout if text else sys.stdout.buffer
        yield stream
        stream.flush()
        return
    target = Path(path)
    check_output(target, force=force)
    try:
        fd, tmp = _create_temp(target)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror}") from None
    try:
        raw = os.fdopen(fd, "wb")
        handle: IO = io.TextIOWrapper(raw, encoding="utf-8", newline="") if text else raw
        with handle:
            yield handle
            handle.flush()
            os.fsync(raw.fileno())
            os.fchmod(raw.fileno(), _final_mode())
        _commit(tmp, target, force)
        _fsync_dir(target.parent)
    except OSError as exc:
        other = f" ({exc.filename})" if exc.filename and exc.filename != str(tmp) else ""
        raise OutputError(f"cannot write {target}: {exc.strerror}{other}") from None
    finally:
        tmp.unlink(missing_ok=True)
