"""JSON-lines file target: one ECS document a line, rotated by size, for Filebeat, Vector
or Fluent Bit to tail. A batch is flushed and fsynced before it counts as delivered."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from otwatch.forwarding.ecs import format_ecs
from otwatch.forwarding.events import ForwardEvent
from otwatch.forwarding.targets.base import DeliveryError, FileSpec, target_label

__all__ = ["FileTarget"]


class FileTarget:
    def __init__(self, spec: FileSpec) -> None:
        self.spec = spec
        self.label = target_label(spec)
        self.chunk = 2000
        self.detail = True
        self.path = Path(spec.path)

    async def send(self, events: Sequence[ForwardEvent]) -> None:
        lines = [(format_ecs(event) + "\n").encode() for event in events]
        try:
            await asyncio.to_thread(self._append, lines)
        except OSError as exc:
            raise DeliveryError(f"{self.label}: {exc.strerror or exc}") from None

    def _append(self, lines: list[bytes]) -> None:
        """Append whole lines; rotate first whenever the next line would pass
        ``max_bytes`` (a line longer than that gets a file of its own)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        pending: list[bytes] = []
        for line in lines:
            if size and size + len(line) > self.spec.max_bytes:
                self._write(pending)
                pending = []
                self._rotate()
                size = 0
            pending.append(line)
            size += len(line)
        self._write(pending)

    def _write(self, lines: list[bytes]) -> None:
        if not lines:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            view = memoryview(b"".join(lines))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _rotate(self) -> None:
        """``path`` → ``path.1`` → … → ``path.<keep>`` (the oldest is removed)."""
        keep = self.spec.keep
        for index in range(keep, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            newer = (
                self.path if index == 1 else self.path.with_name(f"{self.path.name}.{index - 1}")
            )
            if newer.exists():
                os.replace(newer, older)

    async def close(self) -> None:
        return None
