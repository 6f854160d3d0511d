"""Tokens (CLI and store) and the --listen safety check."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from otwatch.central.server import ListenError, bind, parse_listen
from otwatch.central.store.db import open_central_store
from otwatch.central.store.models_api import ApiToken
from otwatch.central.store.tokens import TokenError, create_token, digest, verify_token
from otwatch.cli.main import cli


def test_token_cli_create_list_revoke(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    runner = CliRunner()
    made = runner.invoke(
        cli, ["central", "token", "create", "--name", "ana", "--role", "admin", "--db", db]
    )
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[0]
    assert secret.startswith("otw_") and len(secret) > 40
    again = runner.invoke(
        cli, ["central", "token", "create", "--name", "ana", "--role", "reader", "--db", db]
    )
    assert again.exit_code == 1 and "exists already" in again.output
    listed = json.loads(
        runner.invoke(cli, ["central", "token", "list", "--db", db, "--format", "json"]).output
    )
    assert [(t["name"], t["role"], t["revoked"]) for t in listed] == [("ana", "admin", None)]
    assert secret not in json.dumps(listed)
    store = open_central_store(db)
    try:
        with store.session() as s:
            row = s.query(ApiToken).one()
            assert row.token_sha256 == digest(secret)  # only the digest is stored
            assert verify_token(s, secret).name == "ana"
            assert verify_token(s, secret[:-1] + "x") is None
            assert verify_token(s, "not-even-a-token") is None
        assert runner.invoke(cli, ["central", "token", "revoke", "ana", "--db", db]).exit_code == 0
        with store.session() as s:
            assert verify_token(s, secret) is None
        with store.session() as s, pytest.raises(TokenError):
            create_token(s, "bad name", "admin")
        with store.session() as s, pytest.raises(TokenError):
            create_token(s, "x", "root")
    finally:
        store.close()


def test_listen_is_loopback_unless_allowed():
    assert parse_listen("127.0.0.1:8470") == ("127.0.0.1", 8470)
    assert parse_listen("localhost:1") == ("127.0.0.1", 1)
    assert parse_listen("[::1]:8470") == ("::1", 8470)
    for remote in ("0.0.0.0:8470", "192.0.2.1:8470", "[::]:8470"):
        with pytest.raises(ListenError, match="--allow-remote"):
            parse_listen(remote)
    assert parse_listen("0.0.0.0:8470", allow_remote=True) == ("0.0.0.0", 8470)
    for bad in ("8470", "127.0.0.1", "127.0.0.1:99999", "example.org:80"):
        with pytest.raises(ListenError):
            parse_listen(bad)


def test_a_busy_port_is_one_clear_error():
    first = bind(("127.0.0.1", 0))
    try:
        first.listen()
        with pytest.raises(ListenError, match="cannot listen"):
            bind(first.getsockname()[:2])
    finally:
        first.close()
