"""Per-user portal preferences: small JSON values by key (e.g. ``alert_columns``)."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy.orm import Session

from otwatch.central.store.models_portal import UserPref
from otwatch.errors import OtwatchError

__all__ = ["MAX_VALUE_BYTES", "PrefError", "get_pref", "put_pref"]

MAX_VALUE_BYTES = 16 << 10
_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class PrefError(OtwatchError):
    """A preference key or value the store refuses."""


def _check_key(key: str) -> None:
    if not _KEY.match(key):
        raise PrefError(
            f"invalid preference key {key[:80]!r}: lower-case letters, digits and _.- only, "
            "at most 64 characters"
        )


def get_pref(session: Session, user_id: int, key: str) -> Any:
    """The stored value, or None."""
    _check_key(key)
    row = session.get(UserPref, (user_id, key))
    return None if row is None else row.value


def put_pref(session: Session, user_id: int, key: str, value: Any, now: int) -> None:
    _check_key(key)
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > MAX_VALUE_BYTES:
        raise PrefError(f"preference {key!r} is {size} bytes: at most {MAX_VALUE_BYTES}")
    row = session.get(UserPref, (user_id, key))
    if row is None:
        session.add(UserPref(user_id=user_id, key=key, value=value, updated_ns=now))
    else:
        row.value, row.updated_ns = value, now
