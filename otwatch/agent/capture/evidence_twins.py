"""Evidence files of the same content written once: the others are hard links to it.

Under an alert storm many alerts name the same busy host (a PLC polled by every client), so
their files, trimmed to the newest records their budget holds, are often the same bytes:
in the 1M-packet storm of ``bench/replay.py``, 30 of 60 files of 32 MiB. A new file whose
records are the same byte ranges of the ring, in the same format, as one already written in
the pass becomes a hard link to it instead of another copy. A file is made private again
(:func:`unshare`) before anything changes it in place, so alerts never see each other's
changes; deleting one alert's file removes only its name.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from otwatch.agent.capture.evidence_files import FilePlan, copy_range

__all__ = ["Twins", "unshare"]


def _ranges(plan: FilePlan) -> list[tuple[int, int, int]]:
    """The plan's records as (segment, start, end) byte ranges, touching ones joined."""
    out: list[tuple[int, int, int]] = []
    for seg, start, end, _count in plan.runs():
        if out and out[-1][0] == seg and out[-1][2] == start:
            out[-1] = (seg, out[-1][1], end)
        else:
            out.append((seg, start, end))
    return out


class Twins:
    """The new files of one pass, by what decides their bytes."""

    def __init__(self) -> None:
        self._written: dict[tuple[int, bool, int, int], list[tuple[FilePlan, Path]]] = {}
        self._ranges: dict[int, list[tuple[int, int, int]]] = {}

    def _content(self, plan: FilePlan) -> list[tuple[int, int, int]]:
        found = self._ranges.get(id(plan))
        if found is None:
            found = self._ranges[id(plan)] = _ranges(plan)
        return found

    @staticmethod
    def _key(plan: FilePlan) -> tuple[int, bool, int, int]:
        return (plan.job.linktype, plan.job.nanosecond, plan.size, plan.packets)

    def link(self, plan: FilePlan) -> bool:
        """Make ``plan``'s file (new: nothing of it exists yet) a link to a file of this
        pass with the same content; False when there is none (then write it and
        :meth:`add` it)."""
        for other, path in self._written.get(self._key(plan), ()):
            if self._content(other) != self._content(plan):
                continue
            tmp = plan.path.with_suffix(".link")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            try:
                os.link(path, tmp)
                os.replace(tmp, plan.path)
            except OSError:
                return False
            return True
        return False

    def add(self, plan: FilePlan) -> None:
        """A new file of the pass, written from its plan alone."""
        if plan.packets:
            self._written.setdefault(self._key(plan), []).append((plan, plan.path))


def unshare(path: Path) -> None:
    """Give ``path`` its own copy of its bytes when it is a link shared with another alert's
    file, before it is changed in place."""
    try:
        if os.stat(path).st_nlink < 2:
            return
    except FileNotFoundError:
        return
    tmp = path.with_suffix(".copy")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            copy_range(src, dst, 0, os.fstat(src).st_size)
        finally:
            os.close(dst)
    finally:
        os.close(src)
    os.replace(tmp, path)
