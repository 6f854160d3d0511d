"""Builders for portal tests: users straight into the central store, a settable clock, and
signing in through the API like a browser does."""

from __future__ import annotations

from otwatch.central.store.users import add_user
from tests.factories import SEC, T0

PASSWORD = "correct horse battery"


class Clock:
    """A wall clock the test moves (``PortalState(clock=...)``)."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * SEC)


def user(store, name: str, role: str, password: str = PASSWORD) -> None:
    with store.session() as s:
        add_user(s, name, role, password)


def sign_in(client, name: str, password: str = PASSWORD) -> dict[str, str]:
    """Sign ``client`` in (it keeps the cookie); returns the CSRF header for changes."""
    response = client.post("/auth/login", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return {"X-CSRF-Token": response.json()["csrf_token"]}
