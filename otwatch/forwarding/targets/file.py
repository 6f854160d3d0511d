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
        self.path = Path(spec.path)

    async def send(self, events: Sequence[ForwardEvent]) -> None:
        data = "".join(format_ecs(event) + "\n" for event in events).encode()
        try:
            await asyncio.to_thread(self._append, data)
        except OSError as exc:
            raise DeliveryError(f"{self.label}: {exc.strerror or exc}") from None

    def _append(self, data: bytes) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(data) > self.spec.max_bytes:
            self._rotate()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            view = memoryview(data)
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
