"""The AI settings screen in the browser (admins): provider, model, instructions and a key
that is never shown again (not in the page, not by the API); knowledge documents typed in and
uploaded as a file, listed and searchable at once. (Deleting asks with the browser's native
``confirm()``, which this harness counts as an unexpected dialog; deletion is tested through the
API in tests/appliance/test_ai_knowledge_api.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.browser.conftest import Browsers, WebApp

KEY = "sk-ant-browser-key-4711-never-shown"


def test_ai_settings_and_the_knowledge_base(browsers: Browsers, web_app: WebApp, tmp_path: Path) -> None:
    admin = browsers.signed_in("admin")
    admin.goto("/settings/ai")
    form = admin.locator("#ai-form")
    form.get_by_label("Provider").select_option("anthropic")
    form.get_by_label("Model").fill("claude-sonnet-5")
    form.get_by_label("API key").fill(KEY)
    form.get_by_label("Instructions").fill("You answer for Casa Lima, a guesthouse in Tbilisi.")
    admin.get_by_role("button", name="Save AI settings").click()
    expect(admin.locator(".toast", has_text="AI settings saved.")).to_be_visible()
    expect(form.get_by_label("API key")).to_have_value("")
    expect(admin.locator("#ai-key-state")).to_have_text("A key is stored (encrypted; never shown).")

    admin.reload()
    expect(form.get_by_label("Model")).to_have_value("claude-sonnet-5")
    expect(admin.locator("#ai-key-state")).to_contain_text("A key is stored")
    expect(form.get_by_label("API key")).to_have_value("")
    assert KEY not in admin.content()
    stored = web_app.appliance.api.get("/api/v1/settings/ai").json()
    assert (stored["provider"], stored["model"], stored["has_api_key"]) == ("anthropic", "claude-sonnet-5", True)
    assert KEY not in json.dumps(stored)

    text_form = admin.locator("#kb-text-form")
    text_form.get_by_label("Title").fill("Opening hours")
    text_form.get_by_label("Text").fill("# Reception\n\nThe reception is open from 8:00 to 22:00, every day.")
    admin.get_by_role("button", name="Add document").click()
    expect(admin.locator("#kb-list .list-row", has_text="Opening hours")).to_contain_text("1 passages")

    upload = tmp_path / "breakfast.md"
    upload.write_text("# Breakfast\n\nBreakfast is served on the terrace from 7:30 to 10:30.\n")
    admin.get_by_label("File (.txt, .md, .html or .pdf, up to 20 MiB)").set_input_files(str(upload))
    admin.get_by_role("button", name="Upload file").click()
    expect(admin.locator("#kb-list .list-row", has_text="Breakfast")).to_contain_text("md · breakfast.md")
    web_app.shot(admin, "settings-ai")

    found = web_app.appliance.api.get("/api/v1/knowledge/search", params={"q": "when is breakfast served?"}).json()
    assert [p["title"] for p in found["items"]] == ["Breakfast"]
