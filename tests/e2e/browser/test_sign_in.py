"""Signing in through the form: a wrong password is refused, the session cookie's flags, the
CSRF token that changes need, agents kept out of settings, the theme."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.browser.conftest import PASSWORD, USERS, Browsers, WebApp


def test_a_wrong_password_is_refused_and_the_right_one_signs_in(browsers: Browsers, web_app: WebApp) -> None:
    page = browsers.page()
    page.goto("/inbox")
    expect(page).to_have_url(f"{web_app.url}/signin?next=/inbox")
    page.get_by_label("Email").fill(USERS["agent"])
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("wrong email or password")
    expect(page).to_have_url(f"{web_app.url}/signin")
    assert not [c for c in page.context.cookies() if c["name"] == "aat-session"]
    web_app.shot(page, "sign-in-refused")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{web_app.url}/inbox")
    expect(page.get_by_role("heading", name="Conversations")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "aat-session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert cookie["expires"] > 0, "a persistent cookie with Max-Age"
    assert page.evaluate("document.cookie").find("aat-session") == -1, "scripts cannot read the session"


def test_changes_without_the_csrf_token_are_refused(browsers: Browsers, web_app: WebApp) -> None:
    psid = web_app.messenger("CSRF test")
    conversation = web_app.conversation_of(psid)
    page = browsers.signed_in("agent")
    without = page.evaluate("""async (id) => {
        const r = await fetch(`/api/v1/conversations/${id}/close`, {method: "POST"});
        return [r.status, (await r.json()).error.code];
    }""", conversation)
    assert without == [403, "csrf_failed"]
    forged = page.evaluate("""async (id) => {
        const r = await fetch(`/api/v1/conversations/${id}/close`, {method: "POST", headers: {"X-CSRF-Token": "forged"}});
        return r.status;
    }""", conversation)
    assert forged == 403
    assert web_app.appliance.api.get(f"/api/v1/conversations/{conversation}").json()["status"] == "open"
    with_token = page.evaluate("""async (id) => {
        const token = document.querySelector('meta[name="csrf-token"]').content;
        const r = await fetch(`/api/v1/conversations/${id}/close`, {method: "POST", headers: {"X-CSRF-Token": token}});
        return r.status;
    }""", conversation)
    assert with_token == 200


def test_agents_cannot_open_settings(browsers: Browsers, web_app: WebApp) -> None:
    page = browsers.signed_in("agent")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings")).to_have_count(0)
    response = page.goto("/settings/channels")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="You don't have access to this page")).to_be_visible()
    expect(page.get_by_role("button", name="Connect channel")).to_have_count(0)
    admin = browsers.signed_in("admin")
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(admin.get_by_role("heading", name="Channels", exact=True)).to_be_visible()


def test_the_theme_button_switches_and_remembers(browsers: Browsers, web_app: WebApp) -> None:
    page = browsers.signed_in("agent2")
    page.get_by_role("button", name="Switch to dark theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page.get_by_role("button", name="Switch to light theme")).to_be_visible()
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    web_app.shot(page, "inbox-dark")
    page.get_by_role("button", name="Switch to light theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")


def test_sign_out(browsers: Browsers, web_app: WebApp) -> None:
    page = browsers.page()
    browsers.sign_in(page, "admin")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{web_app.url}/signin")
    page.goto("/contacts")
    expect(page).to_have_url(f"{web_app.url}/signin?next=/contacts")
