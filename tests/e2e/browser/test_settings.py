"""Settings in the browser (admins): channels connected with a token, the banner everywhere
when Meta rejects a token, invitations, saved replies used in the composer."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.browser.conftest import Browsers, WebApp
from tests.e2e.conftest import wait_for
from tests.standins.graph_api import GraphStandIn

SPARE_PAGE = "100200300400599"


def test_connect_a_channel_and_see_the_banner_when_its_token_dies(browsers: Browsers, web_app: WebApp) -> None:
    admin = browsers.signed_in("admin")
    admin.goto("/settings/channels")
    admin.get_by_label("Type").select_option("messenger")
    admin.get_by_label("Page id, Instagram account id or WhatsApp phone number id").fill(SPARE_PAGE)
    admin.get_by_label("Name (optional, shown in the inbox)").fill("Spare Page")
    admin.get_by_label("Access token").fill("EAAG-spare")
    admin.get_by_role("button", name="Connect channel").click()
    row = admin.locator(".list-row", has_text="Spare Page")
    expect(row).to_contain_text("Connected")
    expect(admin.get_by_label("Access token")).to_have_value("")
    web_app.shot(admin, "settings-channels")

    psid = web_app.messenger("hello spare page", page=SPARE_PAGE)
    conversation = web_app.conversation_of(psid)
    web_app.graph.fail_next(SPARE_PAGE, GraphStandIn.graph_error(190, status=401))
    agent = browsers.signed_in("agent")
    agent.goto(f"/inbox?conversation={conversation}")
    agent.get_by_label("Message to Messenger contact").fill("this will not go out")
    agent.get_by_role("button", name="Send").click()
    expect(agent.locator(".msg-error").last).to_contain_text("Not delivered")
    wait_for(lambda: web_app.appliance.api.get("/api/v1/channels").json()["items"][-1]["status"] == "needs_reauth",
             what="the channel marked needs_reauth")
    for path in ("/inbox", "/contacts"):
        agent.goto(path)
        expect(agent.get_by_role("alert")).to_contain_text("needs to be reconnected")
        expect(agent.get_by_role("alert")).to_contain_text("Ask an admin")
    agent.goto(f"/inbox?conversation={conversation}")
    expect(agent.get_by_role("button", name="Send")).to_be_disabled()
    web_app.shot(agent, "inbox-needs-reauth")

    admin.goto("/settings/channels")
    expect(admin.get_by_role("alert")).to_contain_text("Reconnect in Settings")
    admin.locator(".list-row", has_text="Spare Page").get_by_role("button", name="Reconnect").click()
    expect(admin.get_by_label("Page id, Instagram account id or WhatsApp phone number id")).to_have_value(SPARE_PAGE)
    admin.get_by_label("Access token").fill("EAAG-spare-new")
    admin.get_by_role("button", name="Connect channel").click()
    expect(admin.locator(".list-row", has_text="Spare Page")).to_contain_text("Connected")
    admin.reload()
    expect(admin.locator("#reauth-banner")).to_have_count(0)


def test_invite_a_teammate(browsers: Browsers, web_app: WebApp) -> None:
    admin = browsers.signed_in("admin")
    admin.goto("/settings/team")
    expect(admin.locator("#user-list")).to_contain_text("ana.agent@example.com")
    admin.get_by_label("Email").fill("new.teammate@example.com")
    admin.get_by_label("Role").select_option("agent")
    admin.get_by_role("button", name="Create invitation").click()
    link = admin.locator("#invite-result code")
    expect(link).to_contain_text("/invite/")
    web_app.shot(admin, "settings-team")
    invited = browsers.page()
    invited.goto(link.inner_text())
    expect(invited.get_by_role("heading", name="Join the workspace")).to_be_visible()
    invited.get_by_label("New password").fill("a long enough passphrase")
    invited.get_by_role("button", name="Set password and sign in").click()
    expect(invited).to_have_url(f"{web_app.url}/inbox")


def test_saved_replies_reach_the_composer(browsers: Browsers, web_app: WebApp) -> None:
    admin = browsers.signed_in("admin")
    admin.goto("/settings/replies")
    admin.get_by_label("Shortcut").fill("hours")
    admin.get_by_label("Text").fill("We are open from 9 to 21 every day.")
    admin.get_by_role("button", name="Save reply").click()
    expect(admin.locator("#reply-list")).to_contain_text("/hours")
    psid = web_app.messenger("when are you open?")
    agent = browsers.signed_in("agent")
    agent.goto(f"/inbox?conversation={web_app.conversation_of(psid)}")
    agent.get_by_label("Saved reply").select_option(label="/hours · We are open from 9 to 21 every day.")
    expect(agent.get_by_label("Message to Messenger contact")).to_have_value("We are open from 9 to 21 every day.")


def test_other_settings_screens_load(browsers: Browsers, web_app: WebApp) -> None:
    admin = browsers.signed_in("owner")
    for section, heading in (("workspace", "Workspace"), ("ai", "AI"), ("integrations", "Integrations")):
        admin.goto(f"/settings/{section}")
        expect(admin.get_by_role("heading", name=heading, exact=True).first).to_be_visible()
        expect(admin.locator(".list .error, p.error")).to_have_count(0)
    admin.goto("/settings/workspace")
    expect(admin.get_by_label("Time zone")).not_to_have_value("")
    admin.get_by_label("Business name").fill("Casa Lima")
    admin.get_by_role("button", name="Save workspace settings").click()
    expect(admin.locator(".toast", has_text="Workspace settings saved.")).to_be_visible()
