"""Real receivers for the forwarding tests: a test CA (openssl), rsyslog on loopback ports
(UDP, TCP with octet counting, TLS with client certificates) writing raw messages to files,
and an HTTPS webhook receiver that checks nothing itself and records every request."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class TestCA:
    directory: Path

    def path(self, name: str) -> str:
        return str(self.directory / name)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path) -> TestCA:
    """ca.pem; server.pem/server.key for 127.0.0.1 and localhost; client.pem/client.key; a
    second CA (other-ca.pem) that signed nothing here."""
    directory.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other-ca"):
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.pem",
            "-subj",
            f"/CN=otwatch test {ca}",
            cwd=directory,
        )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        (directory / f"{name}.ext").write_text(ext + "\n")
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}.otwatch.test",
            cwd=directory,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.pem",
            "-extfile",
            f"{name}.ext",
            cwd=directory,
        )
    return TestCA(directory)


@dataclass
class Rsyslog:
    """rsyslogd in the foreground with a private configuration; one output file per input."""

    directory: Path
    ca: TestCA
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        if not Path(RSYSLOGD).exists():
            pytest.skip("rsyslogd not installed (scripts/ensure-system.sh installs rsyslog)")
        if not list(Path("/usr/lib").glob("*/rsyslog/lmnsd_gtls.so")):
            pytest.skip("rsyslog-gnutls not installed (scripts/ensure-system.sh installs it)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ports = {
            "udp": free_port(socket.SOCK_DGRAM),
            "tcp": free_port(),
            "tls": free_port(),
        }
        d, ca = self.directory, self.ca
        conf = f"""
global(workDirectory="{d}" maxMessageSize="256k"
       parser.escapeControlCharactersOnReceive="off"
       defaultNetstreamDriverCAFile="{ca.path("ca.pem")}"
       defaultNetstreamDriverCertFile="{ca.path("server.pem")}"
       defaultNetstreamDriverKeyFile="{ca.path("server.key")}")
module(load="imudp")
module(load="imtcp" maxSessions="1000")
template(name="raw" type="string" string="%rawmsg%\\n")
input(type="imudp" address="127.0.0.1" port="{self.ports["udp"]}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{self.ports["tcp"]}" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="{self.ports["tls"]}" ruleset="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="raw") }}
ruleset(name="tcp") {{ action(type="omfile" file="{d}/tcp.log" template="raw") }}
ruleset(name="tls") {{ action(type="omfile" file="{d}/tls.log" template="raw") }}
"""
        (d / "rsyslog.conf").write_text(conf)
        check = subprocess.run(
            [RSYSLOGD, "-N1", "-f", str(d / "rsyslog.conf")], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(d / "rsyslog.conf"), "-i", str(d / "rsyslogd.pid")],
            stdout=subprocess.DEVNULL,
            stderr=open(d / "rsyslogd.err", "wb"),  # noqa: SIM115 - closed with the process
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if all(self._listening(p) for p in (self.ports["tcp"], self.ports["tls"])):
                return
            assert self.proc.poll() is None, (d / "rsyslogd.err").read_text()
            time.sleep(0.05)
        raise AssertionError("rsyslogd did not start listening")

    @staticmethod
    def _listening(port: int) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    def lines(self, name: str) -> list[str]:
        path = self.directory / f"{name}.log"
        if not path.exists():
            return []
        return path.read_text(encoding="utf-8").splitlines()

    def wait_lines(self, name: str, count: int, timeout: float = 15) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines(name)
            if len(lines) >= count:
                return lines
            time.sleep(0.05)
        raise AssertionError(
            f"{name}: {len(self.lines(name))} lines after {timeout}s, want {count}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class WebhookReceiver:
    """HTTPS (own certificate) on 127.0.0.1; ``fail`` answers the next N requests with 500."""

    def __init__(self, ca: TestCA) -> None:
        self.requests: list[Request] = []
        self.failures: list[Request] = []
        self.fail = 0
        self.delay_s = 0.0
        self.count = 0
        """Events received in accepted requests (counted once, as they arrive)."""
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                length = int(self.headers.get("Content-Length", "0"))
                request = Request(self.path, dict(self.headers.items()), self.rfile.read(length))
                with receiver.lock:
                    failing = receiver.fail > 0
                    receiver.fail -= 1 if failing else 0
                    (receiver.failures if failing else receiver.requests).append(request)
                if not failing:
                    data = request.json()
                    with receiver.lock:
                        receiver.count += len(data) if isinstance(data, list) else 1
                status, body = (500, b"receiver says no: disk full") if failing else (200, b"ok")
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.ca_path = ca.path("ca.pem")
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(ca.path("server.pem"), ca.path("server.key"))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/hook"

    def events(self) -> list[dict]:
        out = []
        for request in self.requests:
            data = request.json()
            out.extend(data if isinstance(data, list) else [data])
        return out

    def close(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)
