"""Fixtures of the portal's browser tests: one system and one headless Chromium per test run
(module scope: the browser tests are one module, and Playwright's event loop must be gone
before other modules in the same worker call ``asyncio.run``), a fresh browser context per
test, signed in as the role the test asks for. Every test also
checks that the browser asked nothing of any host but central and that no dialog opened
(an XSS payload that ran would open one)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.portal.harness import CHROMIUM, CHROMIUM_FLAGS, USERS, VIEWPORT, Plant, start_plant


@pytest.fixture(scope="module")
def plant(tmp_path_factory) -> Iterator[Plant]:
    root = tmp_path_factory.mktemp("portal")
    screens = root / "screens"
    screens.mkdir()
    plant = start_plant(root, screens)
    yield plant
    plant.stop()
    print(f"\nportal screenshots: {screens}")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def signed_in(browser, plant, tmp_path_factory) -> dict[str, Path]:
    """A stored sign-in (cookie) per role, made once through the sign-in API."""
    out = {}
    for role, (name, password) in USERS.items():
        context = browser.new_context(base_url=plant.url)
        answer = context.request.post("/auth/login", data={"username": name, "password": password})
        assert answer.status == 200, answer.text()
        path = tmp_path_factory.mktemp("state") / f"{role}.json"
        context.storage_state(path=str(path))
        context.close()
        out[role] = path
    return out


class Session:
    """A browser context and its page, recording every request and dialog."""

    def __init__(self, browser, plant: Plant, state: Path | None) -> None:
        self.plant = plant
        self.context = browser.new_context(
            base_url=plant.url,
            viewport=VIEWPORT,
            storage_state=str(state) if state else None,
            accept_downloads=True,
        )
        self.context.set_default_timeout(15_000)
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page = self.context.new_page()
        self._watch(self.page)

    def _watch(self, page) -> None:
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", self._console)

    def _console(self, message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.errors.append(message.text)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def new_page(self):
        page = self.context.new_page()
        self._watch(page)
        return page

    def shot(self, name: str, *, docs: bool = False, page=None) -> Path:
        folder = self.plant.screens
        if docs:
            folder.joinpath("docs").mkdir(exist_ok=True)
        path = folder / ("docs" if docs else "") / f"{name}.png"
        (page or self.page).screenshot(path=str(path))
        return path

    def close(self) -> None:
        self.context.close()

    def check(self) -> None:
        outside = [u for u in self.requests if not u.startswith(self.plant.url + "/")]
        assert not outside, f"requests left central: {outside}"
        assert not self.dialogs, f"a dialog opened (script ran): {self.dialogs}"
        assert not self.errors, f"script errors on the page: {self.errors}"


@pytest.fixture
def session_for(browser, plant, signed_in) -> Iterator[Callable[[str | None], Session]]:
    """``session_for("admin" | "reader" | None)``: a new context, signed in or not."""
    made: list[Session] = []

    def make(role: str | None = "admin") -> Session:
        session = Session(browser, plant, signed_in[role] if role else None)
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()
    for session in made:
        session.check()


@pytest.fixture
def admin(session_for) -> Session:
    return session_for("admin")


@pytest.fixture
def reader(session_for) -> Session:
    return session_for("reader")


@pytest.fixture(scope="module", autouse=True)
def _docs_screenshots(plant) -> Iterator[None]:
    """Screens made for the README and docs/portal.md go to docs/img/ at the end when
    ``OTWATCH_DOC_SCREENSHOTS=1`` (a plain test run leaves the checkout untouched; every
    screen is also kept under the run's temporary directory, ``plant.screens``)."""
    yield
    made = plant.screens / "docs"
    if made.exists() and os.environ.get("OTWATCH_DOC_SCREENSHOTS") == "1":
        from tests.portal.harness import DOCS_IMG

        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        for png in made.glob("*.png"):
            shutil.copyfile(png, DOCS_IMG / png.name)
