"""``deploy/certs/make-test-certs.sh``: certificates that a real Mosquitto accepts.

A private broker (127.0.0.1, free port) requires client certificates, takes the CN as the
user name and applies ``deploy/mosquitto/acl``; the sensor and central certificates made by
the script then talk through it, and a sensor cannot write another sensor's topics.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "deploy" / "certs" / "make-test-certs.sh"
ACL = REPO / "deploy" / "mosquitto" / "acl"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing")


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl missing (scripts/ensure-system.sh installs it)")
    out = tmp_path_factory.mktemp("certs") / "tls"
    result = subprocess.run(
        ["bash", str(SCRIPT), "-d", "2", "-b", "broker.example", str(out), "s1", "s2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


@needs_openssl
def test_files_modes_and_chain(certs):
    names = ("ca", "broker", "s1", "s2", "otwatch-central")
    for name in names:
        assert (certs / f"{name}.crt").stat().st_mode & 0o777 == 0o644
        assert (certs / f"{name}.key").stat().st_mode & 0o777 == 0o600
    assert certs.stat().st_mode & 0o777 == 0o700
    crts = [str(certs / f"{n}.crt") for n in names[1:]]
    assert openssl("verify", "-CAfile", str(certs / "ca.crt"), *crts).count(": OK") == 4
    san = openssl("x509", "-in", str(certs / "broker.crt"), "-noout", "-ext", "subjectAltName")
    assert "DNS:localhost" in san and "IP Address:127.0.0.1" in san and "broker.example" in san
    for name, cn in (("s1", "s1"), ("otwatch-central", "otwatch-central")):
        subject = openssl("x509", "-in", str(certs / f"{name}.crt"), "-noout", "-subject")
        assert subject.strip().endswith(f"CN = {cn}")


@needs_openssl
def test_adding_a_sensor_later_reuses_the_ca(certs):
    before = (certs / "ca.crt").read_bytes()
    result = subprocess.run(["bash", str(SCRIPT), str(certs), "s3"], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (certs / "ca.crt").read_bytes() == before
    assert ": OK" in openssl("verify", "-CAfile", str(certs / "ca.crt"), str(certs / "s3.crt"))


@pytest.mark.parametrize("bad", ["bad id", "-x", "otwatch-central", "a/b"])
def test_invalid_sensor_id_is_refused(tmp_path, bad):
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "o"), bad], capture_output=True,
                            text=True)  # fmt: skip
    assert result.returncode == 2 and not (tmp_path / "o").exists()


def test_usage_without_arguments():
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("usage: make-test-certs.sh")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker(certs, tmp_path):
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(mosquitto).exists() or shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto and mosquitto-clients are needed")
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        "user root\n"  # do not drop to 'mosquitto': the files are in root's test directory
        f"listener {port} 127.0.0.1\n"
        f"cafile {certs / 'ca.crt'}\ncertfile {certs / 'broker.crt'}\n"
        f"keyfile {certs / 'broker.key'}\n"
        "require_certificate true\nuse_identity_as_username true\n"
        f"allow_anonymous false\nacl_file {ACL}\n"
    )
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"mosquitto did not start: {proc.stderr.read()}")
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def _client_args(certs: Path, name: str, port: int) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(port), "--cafile", str(certs / "ca.crt"),
            "--cert", str(certs / f"{name}.crt"), "--key", str(certs / f"{name}.key"),
            "-q", "1"]  # fmt: skip


def test_sensor_and_central_talk_through_the_acl(certs, broker):
    central = subprocess.Popen(
        ["mosquitto_sub", *_client_args(certs, "otwatch-central", broker),
         "-t", "otwatch/v1/+/up/#", "-v", "-C", "1", "-W", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.5)  # let the subscription land
    for topic, payload in (("otwatch/v1/s2/up/events", "forged"),
                           ("otwatch/v1/s1/up/events", "genuine")):  # fmt: skip
        pub = subprocess.run(
            ["mosquitto_pub", *_client_args(certs, "s1", broker), "-t", topic, "-m", payload],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        assert pub.returncode == 0, pub.stderr
    out, err = central.communicate(timeout=30)
    assert central.returncode == 0, err
    assert out.strip() == "otwatch/v1/s1/up/events genuine"


def test_a_client_certificate_from_another_ca_is_refused(certs, broker, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["bash", str(SCRIPT), str(other), "s1"], check=True, capture_output=True)
    args = _client_args(certs, "s1", broker)
    args[args.index("--cert") + 1] = str(other / "s1.crt")
    args[args.index("--key") + 1] = str(other / "s1.key")
    pub = subprocess.run(["mosquitto_pub", *args, "-t", "otwatch/v1/s1/up/x", "-m", "x"],
                         capture_output=True, text=True, timeout=20)  # fmt: skip
    assert pub.returncode != 0
