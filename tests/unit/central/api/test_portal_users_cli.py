"""``otwatch central user …`` on a real SQLite database: add (password file, standard input
or prompt), list, set-role, disable/enable, reset-password, and the argon2id hash."""

from __future__ import annotations

import json

from click.testing import CliRunner

from otwatch.central.store.db import open_central_store
from otwatch.central.store.models_portal import PortalUser
from otwatch.central.store.portal_sessions import SessionLimits, resolve_session, start_session
from otwatch.central.store.users import authenticate
from otwatch.cli.main import cli
from tests.factories import T0


def test_user_cli_manages_accounts(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(cli, ["central", "user", *args, "--db", db], input=input)

    secret = tmp_path / "pw"
    secret.write_text("first password\n")
    assert run("add", "ana", "--role", "admin", "--password-file", str(secret)).exit_code == 0
    prompted = run("add", "bo", "--role", "reader", input="second password\nsecond password\n")
    assert prompted.exit_code == 0, prompted.output
    mismatch = run("add", "cy", "--role", "reader", input="third password\nother one\n")
    assert mismatch.exit_code != 0
    short = run("add", "cy", "--role", "reader", "--password-file", "-", input="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    again = run("add", "ana", "--role", "reader", "--password-file", str(secret))
    assert again.exit_code == 1 and "exists already" in again.output
    bad = run("add", "a b", "--role", "reader", "--password-file", str(secret))
    assert bad.exit_code == 1 and "invalid user name" in bad.output
    assert run("set-role", "bo", "admin").exit_code == 0
    assert run("disable", "ana").exit_code == 0
    listed = json.loads(run("list", "--format", "json").output)
    assert [(u["name"], u["role"], u["disabled"]) for u in listed] == [
        ("ana", "admin", True),
        ("bo", "admin", False),
    ]
    assert "password" not in json.dumps(listed)
    store = open_central_store(db)
    try:
        with store.session() as s:
            row = s.query(PortalUser).filter_by(name="bo").one()
            assert row.password_hash.startswith("$argon2id$")
            assert "second password" not in row.password_hash
        assert authenticate(store, "ana", "first password", T0) is None  # disabled
        assert authenticate(store, "bo", "second password", T0).name == "bo"
        with store.session() as s:
            sid, _csrf = start_session(s, row.id, T0, SessionLimits())
        reset = run("reset-password", "bo", "--password-file", "-", input="new password 1\n")
        assert reset.exit_code == 0 and "sessions have ended" in reset.output
        with store.session() as s:
            assert resolve_session(s, sid, T0, SessionLimits()) is None
        assert authenticate(store, "bo", "second password", T0) is None
        assert authenticate(store, "bo", "new password 1", T0) is not None
        assert run("enable", "ana").exit_code == 0
        assert authenticate(store, "ana", "first password", T0) is not None
    finally:
        store.close()
    missing = run("disable", "nobody")
    assert missing.exit_code == 1 and "no user named 'nobody'" in missing.output
