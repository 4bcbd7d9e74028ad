"""Browser tests: Playwright (Python) driving Chromium headless against a real
``aat-appliance serve``.

- One appliance for the session (``web_app``): a copy of the e2e template data directory,
  ``AAT_GRAPH_API_BASE`` at a Graph API stand-in, ``AAT_PUBLIC_URL`` at its own address; users
  made with ``aat-appliance users create``; a Messenger Page, an Instagram account and a WhatsApp
  number connected through the API.
- One browser for the session; every test gets fresh contexts (cookies) and pages from
  :class:`Browsers`. ``signed_in(role)`` signs in through the sign-in form once per role and
  reuses that browser state afterwards.
- Chromium: ``AAT_CHROMIUM`` if set, else Debian's ``/usr/bin/chromium`` (``scripts/test`` installs
  it), else Playwright's own download (``python -m playwright install chromium``).
- Screenshots of the main screens go to one folder per run, printed at the end of the run.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.e2e.conftest import BIN, Appliance, Template, json_dumps, signed, wait_for
from tests.standins.graph_api import GraphStandIn

PASSWORD = "correct horse battery staple"
PAGE_ID = "100200300400500"
IG_ID = "17841400000000001"
WA_NUMBER_ID = "105550000000001"
WABA_ID = "205550000000001"
USERS = {"owner": "olga.owner@example.com", "admin": "adam.admin@example.com", "agent": "ana.agent@example.com",
         "agent2": "ben.agent@example.com"}
ROLES = {"owner": "owner", "admin": "admin", "agent": "agent", "agent2": "agent"}
NAMES = {"owner": "Olga", "admin": "Adam", "agent": "Ana", "agent2": "Ben"}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
_SHOTS: list[Path] = []
_ids = itertools.count(1)


def chromium_path() -> str | None:
    """The Chromium to drive; ``None`` lets Playwright use its own download."""
    for candidate in (os.environ.get("AAT_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found


@dataclass
class WebApp:
    appliance: Appliance
    graph: GraphStandIn
    shots: Path

    @property
    def url(self) -> str:
        return self.appliance.base_url

    def webhook(self, body: dict[str, Any]) -> None:
        """A signed Meta delivery, processed before this returns."""
        raw = json_dumps(body)
        response = self.appliance.api.post("/webhooks/meta", content=raw, headers=signed(raw))
        assert response.status_code == 200, response.text
        self.appliance.wait_journal_settled()

    def messenger(self, text: str, *, psid: str | None = None, page: str = PAGE_ID, at_ms: int | None = None) -> str:
        """A Messenger text from ``psid`` (a new contact by default); returns the PSID."""
        import time

        psid = psid or f"2460{next(_ids):010d}"
        at = at_ms or int(time.time() * 1000)
        self.webhook({"object": "page", "entry": [{"id": page, "time": at, "messaging": [{
            "sender": {"id": psid}, "recipient": {"id": page}, "timestamp": at,
            "message": {"mid": f"m_browser_{next(_ids)}", "text": text}}]}]})
        return psid

    def whatsapp(self, text: str, *, name: str, wa_id: str | None = None, at_s: int | None = None) -> str:
        import time

        wa_id = wa_id or f"99555{next(_ids):07d}"
        at = at_s or int(time.time())
        self.webhook({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550000001", "phone_number_id": WA_NUMBER_ID},
                "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                "messages": [{"id": f"wamid.browser{next(_ids)}", "timestamp": str(at), "from": wa_id,
                              "type": "text", "text": {"body": text}}]}}]}]})
        return wa_id

    def conversation_of(self, external_id: str) -> str:
        return self.appliance.conversation_of(external_id)

    def contact_of(self, external_id: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            items = self.appliance.api.get("/api/v1/contacts", params={"q": external_id}).json()["items"]
            return items[0] if items else None

        return wait_for(find, what=f"the contact {external_id}")

    def sends_to(self, asset: str) -> list[Any]:
        return self.graph.sends_to(asset)

    def shot(self, page: Page, name: str) -> None:
        """A screenshot of the whole page, kept as an artifact of the run."""
        path = self.shots / f"{len(_SHOTS) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=False)
        _SHOTS.append(path)


def _users_create(appliance: Appliance, key: str) -> None:
    done = subprocess.run(
        [str(BIN), "users", "create", "--email", USERS[key], "--role", ROLES[key], "--name", NAMES[key],
         "--password-stdin", "--data-dir", str(appliance.data_dir)],
        input=PASSWORD, text=True, capture_output=True, env=appliance.env, cwd=appliance.root, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="package")
def web_app(tmp_path_factory: pytest.TempPathFactory, template: Template) -> Iterator[WebApp]:
    graph = GraphStandIn().start()
    root = tmp_path_factory.mktemp("browser")
    appliance = Appliance(root / "appliance", template, graph)
    appliance.env["AAT_PUBLIC_URL"] = appliance.base_url
    for key in USERS:
        _users_create(appliance, key)
    appliance.start()
    appliance.connect_channel(type="messenger", external_id=PAGE_ID, access_token="EAAG-browser", name="Casa Lima")
    appliance.connect_channel(type="instagram", external_id=IG_ID, access_token="IG-browser", name="casalima")
    appliance.connect_channel(type="whatsapp", external_id=WA_NUMBER_ID, access_token="WA-browser", waba_id=WABA_ID)
    shots = Path(os.environ.get("AAT_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        yield WebApp(appliance, graph, shots)
    finally:
        appliance.cleanup()
        graph.stop()


# Package scope: Playwright's sync API keeps an event loop running in the main thread while it
# is open, and the async tests collected after this package (tests/security) need it closed.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@dataclass
class Browsers:
    """Contexts and pages for one test, closed at its end."""

    browser: Browser
    app: WebApp
    states: dict[str, Any]
    contexts: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def page(self, *, state: Any = None, viewport: dict[str, int] | None = None, **options: Any) -> Page:
        context = self.browser.new_context(base_url=self.app.url, storage_state=state, accept_downloads=True,
                                           viewport=viewport or {"width": 1400, "height": 900}, **options)
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on("dialog", lambda dialog: self.errors.append(f"unexpected dialog: {dialog.message}") or dialog.dismiss())
        return page

    def sign_in(self, page: Page, key: str) -> None:
        page.goto("/signin")
        page.get_by_label("Email").fill(USERS[key])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/inbox")

    def signed_in(self, key: str = "agent", **options: Any) -> Page:
        """A page of ``key`` (owner, admin, agent, agent2), signed in through the form once per
        run; later pages reuse that session's cookies."""
        if key not in self.states:
            page = self.page()
            self.sign_in(page, key)
            self.states[key] = page.context.storage_state()
            return page
        page = self.page(state=self.states[key], **options)
        page.goto("/inbox")
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture(scope="package")
def _states() -> dict[str, Any]:
    return {}


@pytest.fixture
def browsers(browser: Browser, web_app: WebApp, _states: dict[str, Any]) -> Iterator[Browsers]:
    made = Browsers(browser, web_app, _states)
    yield made
    made.close()
    assert made.errors == [], made.errors


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _SHOTS:
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(f"{len(_SHOTS)} screenshots in {_SHOTS[0].parent}")


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
