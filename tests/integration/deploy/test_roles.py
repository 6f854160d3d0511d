"""Sensor roles enforced by the system, with real Unix users (docs/deploy.md, "Roles").

The fixture creates the role groups and throw-away users with ``useradd``, lays out a data
directory and a configuration directory with the shipped ``systemd/tmpfiles.d/otwatch.conf``
(paths moved under a temporary root), lets the agent's service user create the database, and
runs ``otwatch`` as each user through ``setpriv --init-groups``. Everything it created is
removed afterwards; groups or users that already existed are left alone.
"""

from __future__ import annotations

import csv
import fcntl
import grp
import io
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ROLE_GROUPS = ("otwatch-readers", "otwatch-analysts", "otwatch-admins")
AGENT = "otwatch-agent"
USERS = {
    "otwt-reader": ("otwatch-readers",),
    "otwt-analyst": ("otwatch-readers", "otwatch-analysts"),
    "otwt-admin": ROLE_GROUPS,
    "otwt-outsider": (),
}
READER_REFUSAL = (
    "error: permission denied: role 'read-only' cannot change alerts "
    "(member of otwatch-analysts required)"
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("useradd") is None,
    reason="needs root, setpriv and useradd to create and switch to real Unix users",
)


def _exists(kind, name: str) -> bool:
    try:
        kind(name)
    except KeyError:
        return False
    return True


def _groups_of(user: str) -> set[str]:
    return {g.gr_name for g in grp.getgrall() if user in g.gr_mem}


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@dataclass
class Site:
    root: Path
    data: Path
    etc: Path
    python: list[str]
    env: dict[str, str]

    def run(self, user: str, *args: str, stdin: int | None = None) -> subprocess.CompletedProcess:
        pw = pwd.getpwnam(user)
        cmd = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
               *self.python, *args]  # fmt: skip
        env = {**self.env, "HOME": str(self.root / "home" / user)}
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, env=env, cwd="/", stdin=stdin
        )

    def otwatch(self, user: str, *args: str) -> subprocess.CompletedProcess:
        return self.run(user, "-m", "otwatch.cli", "--data-dir", str(self.data), *args)

    def py(self, user: str, code: str) -> subprocess.CompletedProcess:
        return self.run(user, "-c", code)

    def alerts(self) -> list[dict]:
        """Every alert row and the audit log length, read directly (cheaper than the CLI)."""
        # A plain connection (root): as the last one to close it removes -wal/-shm again.
        with closing(sqlite3.connect(self.data / "otwatch.db")) as conn:
            conn.row_factory = sqlite3.Row
            rows = [dict(r) for r in conn.execute("SELECT * FROM alerts ORDER BY id")]
            audit = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        return [*rows, {"audit_events": audit}]


def _interpreter(user: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """This test's Python if ``user`` can run it, else the system Python of the same version
    with this environment's packages on PYTHONPATH; skip when neither works."""
    pw = pwd.getpwnam(user)
    probe = "import otwatch.cli.main, tests.factories"
    env = {**env, "HOME": "/nonexistent"}
    candidates = [([sys.executable], env)]
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if system.exists():
        site = [p for p in sys.path if p.endswith("site-packages")]
        extra = {"PYTHONPATH": os.pathsep.join([str(REPO), *site])}
        candidates.append(([str(system)], {**env, **extra}))
    errors = []
    for python, penv in candidates:
        result = subprocess.run(
            ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
             *python, "-c", probe], capture_output=True, text=True, env=penv, cwd="/",
        )  # fmt: skip
        if result.returncode == 0:
            return python, penv
        errors.append(result.stderr.strip().splitlines()[-1:] or ["?"])
    pytest.skip(f"an unprivileged user cannot run otwatch from this checkout: {errors}")


SEED = """
from otwatch.agent.alerts.manager import AlertManager
from otwatch.alerts.catalog import load_catalog
from otwatch.agent.store.db import open_store
from tests.factories import T0, detection
store = open_store({data!r})
manager = AlertManager(store, load_catalog(), sensor_id="s1", site="north", zone="z1")
manager.observe(detection(src="192.0.2.1", ts_ns=T0, function_code=16))
manager.observe(detection(src="192.0.2.2", ts_ns=T0 + 1))
manager.observe(detection("modbus_exception", src="198.51.100.20", dst="192.0.2.1",
                          ts_ns=T0 + 2, exception_code=2))
manager.flush()
store.close()
"""


LOCK = Path("/tmp/otwatch-roles-test.lock")


@pytest.fixture(scope="module")
def site():
    # Users and groups are machine-wide: concurrent test runs on this machine take turns.
    lock = LOCK.open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    made_groups: list[str] = []
    made_users: list[str] = []
    added_to_analysts = False
    base = Path(tempfile.mkdtemp(prefix="otwatch-roles-", dir="/tmp"))
    try:
        for group in ROLE_GROUPS:
            if not _exists(grp.getgrnam, group):
                _sh("groupadd", "--system", group)
                made_groups.append(group)
        if not _exists(pwd.getpwnam, AGENT):
            _sh("useradd", "--system", "--no-create-home", "--user-group", "--shell",
                "/usr/sbin/nologin", "--groups", "otwatch-analysts", AGENT)  # fmt: skip
            made_users.append(AGENT)
        elif "otwatch-analysts" not in _groups_of(AGENT):
            _sh("gpasswd", "--add", AGENT, "otwatch-analysts")
            added_to_analysts = True
        for user, groups in USERS.items():
            if _exists(pwd.getpwnam, user):
                _sh("userdel", user)  # left over from an interrupted run
            cmd = ["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin"]
            if groups:
                cmd += ["--groups", ",".join(groups)]
            _sh(*cmd, user)
            made_users.append(user)

        base.chmod(0o755)
        for sub in ("var/lib", "etc"):
            (base / sub).mkdir(parents=True)
        conf = (REPO / "systemd/tmpfiles.d/otwatch.conf").read_text()
        conf = conf.replace("/var/lib/otwatch", f"{base}/var/lib/otwatch")
        conf = conf.replace("/etc/otwatch", f"{base}/etc/otwatch")
        (base / "tmpfiles.conf").write_text(conf)
        tmpfiles = ["systemd-tmpfiles", "--create", str(base / "tmpfiles.conf")]
        made = subprocess.run(tmpfiles, capture_output=True, text=True)
        assert made.returncode == 0 and "Failed" not in made.stderr, made.stderr
        (base / "etc/otwatch/otwatch.toml").write_text('[sensor]\nid = "s1"\n')
        subprocess.run(tmpfiles, check=True, capture_output=True)  # 'z': the config's mode

        env = {k: v for k, v in os.environ.items() if not k.startswith("OTWATCH_")}
        for user in ("root", AGENT, *USERS):  # a HOME each (Scapy keeps a cache there)
            pw = pwd.getpwnam(user)
            (base / "home" / user).mkdir(parents=True)
            os.chown(base / "home" / user, pw.pw_uid, pw.pw_gid)
        (base / "home").chmod(0o755)
        env |= {
            "OTWATCH_CONFIG": str(base / "etc/otwatch/otwatch.toml"),
            "PYTHONPATH": str(REPO),
        }
        python, env = _interpreter("otwt-reader", env)
        env.pop("HOME")
        s = Site(base, base / "var/lib/otwatch", base / "etc/otwatch", python, env)
        seeded = s.py(AGENT, SEED.format(data=str(s.data)))
        assert seeded.returncode == 0, seeded.stderr
        yield s
    finally:
        for user in made_users:
            subprocess.run(["userdel", user], capture_output=True)
        if added_to_analysts:
            subprocess.run(["gpasswd", "--delete", AGENT, "otwatch-analysts"], capture_output=True)
        for group in made_groups:
            subprocess.run(["groupdel", group], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def one_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_layout_and_database_ownership(site):
    db = site.data / "otwatch.db"
    st = db.stat()
    assert pwd.getpwuid(st.st_uid).pw_name == AGENT
    assert grp.getgrgid(st.st_gid).gr_name == "otwatch-analysts"
    assert st.st_mode & 0o777 == 0o660
    assert not (site.data / "otwatch.db-wal").exists()  # the agent closed it


def test_reader_lists_shows_and_exports(site):
    listed = site.otwatch("otwt-reader", "alerts", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 3
    shown = site.otwatch("otwt-reader", "alerts", "show", "1", "--format", "json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == 1
    exported = site.otwatch("otwt-reader", "alerts", "export", "-o", "-")
    assert exported.returncode == 0, exported.stderr
    assert len(list(csv.DictReader(io.StringIO(exported.stdout)))) == 3
    assert not (site.data / "otwatch.db-wal").exists()  # reading created nothing


def test_reader_reads_while_the_agent_is_writing(site):
    holder = subprocess.Popen(
        ["setpriv", f"--reuid={pwd.getpwnam(AGENT).pw_uid}",
         f"--regid={pwd.getpwnam(AGENT).pw_gid}", "--init-groups", *site.python, "-c",
         "import sqlite3, sys\n"
         f"c = sqlite3.connect({str(site.data / 'otwatch.db')!r})\n"
         "c.execute('PRAGMA wal_autocheckpoint=0')\n"
         "c.execute(\"UPDATE alerts SET message = message || ' [agent]' WHERE id = 3\")\n"
         "c.commit(); print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/",
        env={**site.env, "HOME": str(site.root / "home" / AGENT)},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert (site.data / "otwatch.db-wal").exists()
        shown = site.otwatch("otwt-reader", "alerts", "show", "3", "--format", "json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["message"].endswith("[agent]")
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        ("set-status", "closed", "1"),
        ("set-severity", "high", "1"),
        ("learn", "1"),
        ("mute", "1"),
        ("comment", "1", "looks fine"),
    ],
)
def test_reader_cannot_change_alerts(site, args):
    before = site.alerts()
    assert one_error(site.otwatch("otwt-reader", "alerts", *args)) == READER_REFUSAL
    assert site.alerts() == before


def test_reader_cannot_write_even_without_the_cli(site):
    db = str(site.data / "otwatch.db")
    code = (
        "import sqlite3\n"
        f"c = sqlite3.connect({db!r})\n"
        "try:\n"
        "    c.execute(\"UPDATE alerts SET status='closed'\"); c.commit(); print('WROTE')\n"
        "except sqlite3.Error as e:\n"
        "    print('refused:', e)\n"
        f"for attempt in (lambda: open({db!r}, 'r+b'),\n"
        f"                lambda: open({str(site.data / 'planted')!r}, 'w')):\n"
        "    try:\n"
        "        attempt(); print('WROTE')\n"
        "    except PermissionError:\n"
        "        print('refused: permission')\n"
    )
    result = site.py("otwt-reader", code)
    assert result.returncode == 0, result.stderr
    assert "WROTE" not in result.stdout and result.stdout.count("refused") == 3
    assert all(a["status"] == "new" for a in site.alerts()[:-1])


def test_outsider_cannot_read(site):
    assert one_error(site.otwatch("otwt-outsider", "alerts", "list")) == (
        "error: permission denied: user 'otwt-outsider' (no otwatch role) cannot read alerts "
        "(member of otwatch-readers required)"
    )
    line = one_error(site.otwatch("otwt-outsider", "alerts", "set-status", "closed", "1"))
    assert "user 'otwt-outsider' (no otwatch role) cannot read alerts" in line


def test_analyst_triages_as_themself(site):
    closed = site.otwatch("otwt-analyst", "alerts", "set-status", "closed", "1")
    assert closed.returncode == 0, closed.stderr
    learned = site.otwatch("otwt-analyst", "alerts", "learn", "2")
    assert learned.returncode == 0, learned.stderr
    shown = site.otwatch("otwt-reader", "alerts", "show", "1", "--format", "json")
    shown = json.loads(shown.stdout)
    assert shown["status"] == "closed"
    assert shown["audit"][-1]["actor"] == "otwt-analyst"


def test_analyst_cannot_delete_or_replace_the_database(site):
    db = site.data / "otwatch.db"
    result = site.py(
        "otwt-analyst",
        f"import os\ntry:\n    os.remove({str(db)!r}); print('DELETED')\n"
        "except PermissionError:\n    print('refused')\n",
    )
    assert result.stdout.strip() == "refused" and db.exists()


def test_only_admins_change_the_configuration(site):
    config = site.etc / "otwatch.toml"
    append = (
        f"try:\n    open({str(config)!r}, 'a').write('\\n')\n    print('changed')\n"
        "except PermissionError:\n    print('refused')\n"
    )
    for user, expected in (("otwt-reader", "refused"), ("otwt-analyst", "refused"),
                           ("otwt-admin", "changed")):  # fmt: skip
        result = site.py(user, append)
        assert result.stdout.strip() == expected, (user, result.stderr)
    checked = site.otwatch("otwt-reader", "config", "check")
    assert checked.returncode == 0 and "is valid" in checked.stdout


def test_rule_changes_require_the_admin_role(site):
    code = (
        "from otwatch.cli.roles import Role, current_role, require_role\n"
        "from otwatch.errors import OtwatchError\n"
        "try:\n"
        "    require_role(Role.ADMIN, 'change rules'); print(current_role(), 'allowed')\n"
        "except OtwatchError as exc:\n"
        "    print(exc)\n"
    )
    assert site.py("otwt-analyst", code).stdout.strip() == (
        "permission denied: role 'analyst' cannot change rules (member of otwatch-admins required)"
    )
    assert site.py("otwt-admin", code).stdout.strip() == "admin allowed"


def test_pcap_ring_is_read_only_for_analysts_and_sync(site):
    ring = site.data / "pcap/ring"
    made = site.py(AGENT, f"open({str(ring / 'seg-0001.pcap')!r}, 'wb').write(b'x' * 24)")
    assert made.returncode == 0, made.stderr
    code = (
        f"p = {str(ring / 'seg-0001.pcap')!r}\n"
        "import os\n"
        "print(len(open(p, 'rb').read()))\n"
        "for attempt in (lambda: open(p, 'ab'), lambda: os.remove(p),\n"
        f"                lambda: open({str(ring / 'new.pcap')!r}, 'wb')):\n"
        "    try:\n        attempt(); print('WROTE')\n"
        "    except PermissionError:\n        print('refused')\n"
    )
    assert site.py("otwt-analyst", code).stdout.split() == ["24", "refused", "refused", "refused"]
