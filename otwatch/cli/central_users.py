"""``otwatch central user …``: the web portal's local accounts (reader or admin)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy.orm import Session

from otwatch.central.store.db import open_central_store
from otwatch.central.store.users import (
    add_user,
    check_password,
    list_users,
    reset_password,
    set_disabled,
    set_role,
)
from otwatch.cli.central_api import _db
from otwatch.cli.output import emit_records, format_option
from otwatch.timeutil import format_iso

__all__ = ["user"]

_ROLE = click.Choice(["reader", "admin"])


def _password_file(func: Callable) -> Callable:
    return click.option(
        "--password-file",
        type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
        help="Read the password from the first line of this file ('-': standard input); "
        "otherwise it is asked for twice.",
    )(func)


def _password(path: Path | None) -> str:
    if path is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        try:
            with click.open_file(str(path), encoding="utf-8") as stream:  # "-": stdin
                text = stream.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"cannot read the password file: {exc}") from None
        password = text.splitlines()[0] if text else ""
    check_password(password)
    return password


@contextmanager
def _session(db_url: str) -> Iterator[Session]:
    store = open_central_store(db_url)
    try:
        with store.session() as session:
            yield session
    finally:
        store.close()


@click.group()
def user() -> None:
    """Portal users: reader (view and export) or admin (also triage, comments and PCAP).
    Passwords are stored as argon2id hashes."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=_ROLE, required=True, help="What the user may do.")
@_password_file
@_db
def add(name: str, role: str, password_file: Path | None, db_url: str) -> None:
    """Create a user who can sign in to the portal."""
    password = _password(password_file)
    with _session(db_url) as session:
        add_user(session, name, role, password)
    click.echo(f"user {name!r} ({role}) created")


@user.command("list")
@_db
@format_option(choices=("table", "json"))
def list_(db_url: str, fmt: str) -> None:
    """Users with their role, state, creation and last sign-in (never a password)."""
    with _session(db_url) as session:
        rows = [
            {
                "name": u.name,
                "role": u.role.value,
                "disabled": u.disabled,
                "created": format_iso(u.created_ns),
                "last_login": format_iso(u.last_login_ns),
            }
            for u in list_users(session)
        ]
    emit_records(rows, fmt, ("name", "role", "disabled", "created", "last_login"))


@user.command("set-role")
@click.argument("name")
@click.argument("role", type=_ROLE)
@_db
def set_role_(name: str, role: str, db_url: str) -> None:
    """Change a user's role (effective on their next request)."""
    with _session(db_url) as session:
        changed = set_role(session, name, role)
    click.echo(f"user {name!r} is now {role}" if changed else f"user {name!r} was {role} already")


@user.command("disable")
@click.argument("name")
@_db
def disable(name: str, db_url: str) -> None:
    """Stop a user from signing in and end their sessions."""
    with _session(db_url) as session:
        changed = set_disabled(session, name, True)
    click.echo(f"user {name!r} disabled" if changed else f"user {name!r} was disabled already")


@user.command("enable")
@click.argument("name")
@_db
def enable(name: str, db_url: str) -> None:
    """Allow a disabled user to sign in again."""
    with _session(db_url) as session:
        changed = set_disabled(session, name, False)
    click.echo(f"user {name!r} enabled" if changed else f"user {name!r} was enabled already")


@user.command("reset-password")
@click.argument("name")
@_password_file
@_db
def reset_password_(name: str, password_file: Path | None, db_url: str) -> None:
    """Set a new password; the user's sessions end."""
    password = _password(password_file)
    with _session(db_url) as session:
        reset_password(session, name, password)
    click.echo(f"password of user {name!r} changed; their sessions have ended")
