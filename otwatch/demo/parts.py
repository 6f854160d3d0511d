"""A private Mosquitto on a free loopback port and otwatch daemons as child processes.

Everything listens on 127.0.0.1 only, under the demo's work directory, and is stopped with
SIGTERM (then SIGKILL after a grace period) when the demo ends, even on Ctrl-C.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

from otwatch.errors import OtwatchError

__all__ = ["HOST", "Broker", "DemoError", "Process", "find_mosquitto", "free_port", "wait_until"]

HOST = "127.0.0.1"
T = TypeVar("T")


class DemoError(OtwatchError):
    """A demo step failed; the message says which and where its log is."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], T | None], timeout: float, what: str, log: Path | None = None
) -> T:
    """Poll ``predicate`` until it returns something truthy; DemoError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}" +
                            (f" (log: {log})" if log else ""))  # fmt: skip
        time.sleep(0.1)


def find_mosquitto(install: bool, echo: Callable[[str], Any]) -> str:
    """The mosquitto binary; installed with apt-get when missing, if ``install`` and root."""
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )
    if found:
        return found
    apt = shutil.which("apt-get")
    if install and apt and os.geteuid() == 0:
        echo("mosquitto is missing: installing it with apt-get (the system service it brings "
             "is not used; the demo runs its own broker on a free loopback port)")  # fmt: skip
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for args in ([apt, "update", "-q"], [apt, "install", "-y", "-q", "mosquitto"]):
            result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise DemoError(f"'{' '.join(args)}' failed: {result.stderr.strip()[-300:]}")
        return find_mosquitto(False, echo)
    how = "sudo apt-get install mosquitto (Debian, Ubuntu) or sudo dnf install mosquitto"
    why = "" if install else " (--no-install given)"
    if install and os.geteuid() != 0:
        why = " (not running as root, so the demo does not install it)"
    raise DemoError(f"the demo needs the Mosquitto MQTT broker, which is not installed{why}: "
                    f"install it ({how}) and run the demo again")  # fmt: skip


class Process:
    """A child process with its output in a log file; ``stop`` sends SIGTERM and waits."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.name, self.args, self.log = name, args, log
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def start(self) -> Self:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                stdin=subprocess.DEVNULL, start_new_session=True,  # Ctrl-C is the demo's
            )  # fmt: skip
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise DemoError(
                f"{self.name} exited with status {self.proc.returncode}; see {self.log}:\n"
                + self.tail()
            )

    def tail(self, lines: int = 8) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode, self.proc = self.proc.returncode, None
        return self.returncode


def otwatch_args(*args: str) -> list[str]:
    """The command line running this otwatch with ``args``."""
    return [sys.executable, "-m", "otwatch.cli", *args]


class Broker(Process):
    """Mosquitto on a free loopback port, anonymous, no persistence: a demo, not a deployment
    (deploy/mosquitto/ has the TLS and ACL configuration)."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:  # mosquitto drops root for this user (it must exist)
            lines.append("user " + ("mosquitto" if _user_exists("mosquitto") else "root"))
        config.write_text("\n".join(lines) + "\n")
        super().__init__("mosquitto", [binary, "-c", str(config)], workdir / "mosquitto.log")

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    def start(self) -> Self:
        super().start()

        def listening() -> bool:
            self.check()
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_until(listening, 15, f"mosquitto on {HOST}:{self.port}", self.log)
        return self


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
