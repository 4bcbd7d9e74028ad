"""XSS in Chromium (issue 12, part 4; see SECURITY.md): the places the browser scripts render
user content themselves (the flow builder's step cards and the settings lists) keep a script
payload as text. The server-rendered pages are covered without a browser in
tests/security/test_access_xss.py; message text and names in the inbox by
tests/e2e/browser/test_inbox.py::test_hostile_content_stays_text."""

from __future__ import annotations

import itertools

from playwright.sync_api import Page, expect

from tests.e2e.browser.conftest import Browsers, WebApp

HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
_n = itertools.count(1)


def _assert_inert(page: Page, browsers: Browsers) -> None:
    assert page.evaluate("window.__xss === undefined"), "a payload ran"
    assert page.locator("img[src=x]").count() == 0 and page.locator("script:not([src])").count() == 0
    assert browsers.errors == [], browsers.errors


def test_flow_steps_and_settings_lists_render_payloads_as_text(browsers: Browsers, web_app: WebApp) -> None:
    api = web_app.appliance.api
    n = next(_n)
    steps = {"hello": {"type": "message", "text": f"Hi {HOSTILE}", "buttons": [{"title": "<b>go</b>", "next": "bye"}]},
             "bye": {"type": "handoff", "text": HOSTILE}}
    created = api.post("/api/v1/flows", json={"schema": "aat.flow/v1", "name": f"Flow {n} {HOSTILE}", "start": "hello",
                                              "steps": steps, "triggers": [{"type": "keyword", "keywords": [f"x{n}"]}]})
    assert created.status_code == 201, created.text
    reply = api.post("/api/v1/canned-replies", json={"shortcut": f"xss{n}", "text": HOSTILE})
    assert reply.status_code == 201, reply.text

    page = browsers.signed_in("admin")
    page.goto(f"/flows/{created.json()['id']}")
    expect(page.locator("#builder[data-ready=true]")).to_have_count(1)
    expect(page.locator('[data-step-id="bye"]')).to_contain_text(HOSTILE)
    expect(page.locator("#flow-title")).to_contain_text(HOSTILE)
    _assert_inert(page, browsers)

    settings = browsers.signed_in("admin")  # a page of its own: leaving the builder asks about the layout
    settings.goto("/settings/replies")
    expect(settings.get_by_text(HOSTILE).first).to_be_visible()
    _assert_inert(settings, browsers)
