"""A private Mosquitto for tests: loopback only, on a free port, stopped or killed at will.

``MosquittoBroker`` writes a config into a work directory and runs ``/usr/sbin/mosquitto``:

- ``listener PORT 127.0.0.1`` (never anything else);
- optional persistence directory (``persistence=True``);
- optional TLS with a throwaway CA, server and client certificates made with the
  ``openssl`` CLI (``tls=True``; clients then authenticate by certificate, the CN being the
  user name);
- optional password file (``users={name: password}``) made with ``mosquitto_passwd``;
- the ACL of ``deploy/mosquitto/acl`` when authentication is on (``acl=True``).

The ``mosquitto`` fixture gives a plain broker; tests that need more build their own with
``make_broker``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
REPO = Path(__file__).resolve().parents[2]
ACL = REPO / "deploy" / "mosquitto" / "acl"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Certificates:
    """A throwaway CA plus server and client certificates (EC P-256, valid two days)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = directory / "ca.crt"
        self._ca_key = directory / "ca.key"
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key",
                 cwd=directory)  # fmt: skip
        _openssl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.crt", "-days", "2",
                 "-subj", "/CN=otwatch-test-ca", cwd=directory)  # fmt: skip
        self.server_cert, self.server_key = self.issue(
            "localhost", san="IP:127.0.0.1,DNS:localhost"
        )

    def issue(self, name: str, san: str | None = None) -> tuple[Path, Path]:
        key, csr, crt = (self.dir / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key.name,
                 cwd=self.dir)  # fmt: skip
        _openssl("req", "-new", "-key", key.name, "-out", csr.name, "-subj", f"/CN={name}",
                 cwd=self.dir)  # fmt: skip
        ext = self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
        _openssl("x509", "-req", "-in", csr.name, "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", crt.name, "-days", "2", "-extfile", ext.name,
                 cwd=self.dir)  # fmt: skip
        return crt, key


class MosquittoBroker:
    def __init__(
        self,
        workdir: Path,
        *,
        persistence: bool = False,
        tls: bool = False,
        users: dict[str, str] | None = None,
        acl: bool | None = None,
    ) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.persistence = persistence
        self.certs = Certificates(workdir / "certs") if tls else None
        self.users = users or {}
        self.acl = acl if acl is not None else bool(tls or users)
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "mosquitto.log"
        self._write_config()

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.certs else 'mqtt'}://{HOST}:{self.port}"

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {HOST}",
            "set_tcp_nodelay true",
            "user root",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
        ]
        if self.persistence:
            (self.dir / "data").mkdir(exist_ok=True)
            lines += ["persistence true", f"persistence_location {self.dir / 'data'}/",
                      "autosave_interval 1"]  # fmt: skip
        else:
            lines.append("persistence false")
        if self.certs:
            lines += [
                f"cafile {self.certs.ca}",
                f"certfile {self.certs.server_cert}",
                f"keyfile {self.certs.server_key}",
                "require_certificate true",
                "use_identity_as_username true",
                "allow_anonymous false",
            ]
        elif self.users:
            pw = self.dir / "passwd"
            pw.write_text("")
            for name, password in self.users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), name, password], check=True,
                               capture_output=True)  # fmt: skip
            lines += [f"password_file {pw}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        if self.acl:
            lines.append(f"acl_file {ACL}")
        self.config = self.dir / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err} {self.log_text()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """Clean shutdown (persistence, if on, is saved)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: whatever was not saved yet is gone."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def make_broker(tmp_path) -> Iterator[Callable[..., MosquittoBroker]]:
    if not Path(MOSQUITTO).exists():
        pytest.skip(f"mosquitto not installed ({MOSQUITTO})")
    brokers: list[MosquittoBroker] = []

    def make(name: str = "broker", **kwargs) -> MosquittoBroker:
        broker = MosquittoBroker(tmp_path / name, **kwargs)
        broker.start()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(make_broker) -> MosquittoBroker:
    return make_broker()
