"""The server-rendered pages: who may open which (sign-in redirects, the 403 page for agents on
settings), what they show (every message kind, the composer's policy, filters, counts), what
they never do (show data to anonymous users, let message content become markup or a link to
``javascript:``), and the headers every page carries."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from markupsafe import escape

from appliance.store.workspace import Workspace
from appliance.timeutil import to_iso, utcnow
from appliance.web.pages.common import CSP
from tests.appliance.api_helpers import (  # noqa: F401
    Shared,
    age_window,
    execute,
    on_shared_app,
    rows,
    shared,
)
from tests.appliance.web_helpers import (  # noqa: F401 - web is a fixture
    Web,
    add_message,
    add_note,
    conversation,
    csrf_of,
    sign_in,
    web,
)
from tests.helpers import connect_channel

PAGES = ["/inbox", "/contacts", "/settings/channels", "/settings/team", "/settings/replies", "/settings/ai",
         "/settings/integrations", "/settings/workspace"]
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'




def _no_script_but_files(page: str) -> None:
    """CSP allows only script files from this site: no inline script, handler or style."""
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert re.search(r'\bsrc="/static/[a-z_]+\.js"', tag), tag
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", page), "an inline script"
    for tag in re.findall(r"<[A-Za-z][^>]*>", page):
        tag = re.sub(r'"[^"]*"', '""', tag)  # attribute values (escaped: they cannot end early)
        assert not re.search(r"\son[a-z]+\s*=", tag), f"an inline event handler: {tag}"
        assert not re.search(r"\sstyle\s*=", tag), f"an inline style (CSP style-src 'self' refuses it): {tag}"


# --- access --------------------------------------------------------------------------------------

@on_shared_app
@on_shared_app
@pytest.mark.parametrize("path", [*PAGES, "/inbox?conversation=1", "/contacts/1", "/settings"])
async def test_anonymous_visitors_are_sent_to_sign_in(web: Web, path: str) -> None:
    client = web.anonymous()
    workspace = web.workspace
    response = await client.get(path, follow_redirects=False)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/signin?next=")
    assert location.removeprefix("/signin?next=").replace("%3F", "?").replace("%3D", "=").replace("%26", "&") == path


@pytest.mark.parametrize("path", ["/inbox/fragments/list", "/inbox/fragments/thread/1", "/inbox/fragments/timeline/1",
                                  "/inbox/fragments/message/1", "/inbox/fragments/header/1",
                                  "/inbox/fragments/contact/1"])
async def test_fragments_answer_401_without_a_session(web: Web, path: str) -> None:
    client = web.anonymous()
    workspace = web.workspace
    await conversation(client, workspace, text="secret plans")
    response = await client.get(path, follow_redirects=False)
    assert response.status_code == 401
    assert "secret plans" not in response.text and "<li" not in response.text


@on_shared_app
async def test_anonymous_pages_show_no_data(web: Web) -> None:
    client = web.anonymous()
    workspace = web.workspace
    ids = await conversation(client, workspace, text="the door code is 4321")
    for path in ("/inbox", f"/inbox?conversation={ids['conversation']}", f"/contacts/{ids['contact']}", "/contacts"):
        response = await client.get(path, follow_redirects=True)
        assert response.url.path == "/signin"
        assert "4321" not in response.text and ids["psid"] not in response.text


@on_shared_app
async def test_home_goes_to_the_inbox(web: Web) -> None:
    client = web.anonymous()
    workspace = web.workspace
    response = await client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/inbox"


async def test_an_expired_session_is_sent_to_sign_in(client: AsyncTestClient, workspace: Workspace) -> None:
    await sign_in(client, workspace, "owner")
    execute(workspace, "UPDATE sessions SET last_seen_at = '2020-01-01T00:00:00.000Z'")
    response = await client.get("/contacts", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/signin?next=/contacts"


@on_shared_app
@on_shared_app
@pytest.mark.parametrize("path", ["/settings", *[p for p in PAGES if p.startswith("/settings")]])
async def test_agents_get_the_403_page_on_settings(web: Web, path: str) -> None:
    client, workspace = web.client, web.workspace
    await web.login("agent")
    response = await client.get(path, follow_redirects=False)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "You don&#39;t have access to this page" in response.text
    assert "you are signed in as agent" in response.text
    assert 'id="connect-form"' not in response.text


@pytest.mark.parametrize("role", ["agent", "admin", "owner"])
async def test_every_role_opens_the_inbox_and_contacts(web: Web, role: str) -> None:
    client, workspace = web.client, web.workspace
    await web.login(role)
    for path in ("/inbox", "/contacts"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert 'aria-current="page"' in response.text


@on_shared_app
async def test_the_nav_shows_settings_to_admins_only(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await web.login("agent")
    assert 'href="/settings"' not in (await client.get("/inbox")).text
    await web.login("admin")
    assert 'href="/settings"' in (await client.get("/inbox")).text


@on_shared_app
@on_shared_app
@pytest.mark.parametrize("path", [p for p in PAGES if p.startswith("/settings")])
async def test_admins_open_every_settings_page(web: Web, path: str) -> None:
    client, workspace = web.client, web.workspace
    await web.login("admin")
    response = await client.get(path)
    assert response.status_code == 200
    assert '<script type="module" src="/static/settings.js">' in response.text


@on_shared_app
async def test_settings_redirects_to_channels_and_unknown_sections_are_404(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await web.login("admin")
    response = await client.get("/settings", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/settings/channels"
    assert (await client.get("/settings/billing")).status_code == 404


# --- headers and markup rules --------------------------------------------------------------------

@pytest.mark.parametrize("path", [*PAGES, "/signin", "/forgot"])
async def test_pages_carry_the_security_headers_and_no_inline_code(web: Web, path: str) -> None:
    client, workspace = web.client, web.workspace
    await web.login("owner")
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CSP
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    _no_script_but_files(response.text)


@on_shared_app
async def test_every_input_has_a_label_and_every_button_a_name(web: Web) -> None:
    client, workspace = web.client, web.workspace
    ids = await conversation(client, workspace)
    await web.login("owner")
    for path in [*PAGES, f"/inbox?conversation={ids['conversation']}", f"/contacts/{ids['contact']}"]:
        page = (await client.get(path)).text
        labelled = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', page))
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", page):
            if 'type="hidden"' in tag or 'type="radio"' in tag or 'type="checkbox"' in tag:
                continue  # radios and checkboxes sit inside their label
            found = re.search(r'\bid="([^"]+)"', tag)
            assert found and (found.group(1) in labelled or "aria-label=" in tag), f"{path}: {tag}"
        for attributes, content in re.findall(r"<button\b([^>]*)>(.*?)</button>", page, flags=re.S):
            text = re.sub(r"<[^>]+>", "", content).strip()
            assert text or "aria-label=" in attributes, f"{path}: a button without a name"


@on_shared_app
async def test_the_theme_cookie_themes_the_page(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await web.login("agent")
    assert '<html lang="en" data-theme="light">' in (await client.get("/inbox")).text
    client.cookies.set("aat-theme", "dark")
    page = (await client.get("/inbox")).text
    client.cookies.delete("aat-theme")
    assert '<html lang="en" data-theme="dark">' in page
    assert 'aria-label="Switch to light theme"' in page


# --- the inbox -----------------------------------------------------------------------------------

@on_shared_app
async def test_the_inbox_lists_conversations_and_opens_one(web: Web) -> None:
    client, workspace = web.client, web.workspace
    first = await conversation(client, workspace, text="first question")
    second = await conversation(client, workspace, text="second question")
    await web.login("agent")
    page = (await client.get("/inbox")).text
    assert page.index(f'data-conversation-id="{second["conversation"]}"') < \
        page.index(f'data-conversation-id="{first["conversation"]}"'), "newest first"
    assert "first question" in page and "Pick a conversation" in page
    opened = (await client.get(f"/inbox?conversation={first['conversation']}")).text
    assert 'class="thread"' in opened and "first question" in opened
    assert 'id="composer"' in opened and ">Send</button>" in opened
    assert "Open the full profile" in opened


@on_shared_app
async def test_an_unknown_conversation_is_404_with_the_list(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await conversation(client, workspace, text="still listed")
    await web.login("agent")
    response = await client.get("/inbox?conversation=999999")
    assert response.status_code == 404
    assert "This conversation does not exist" in response.text and "still listed" in response.text


async def test_views_filter_and_count(client: AsyncTestClient, workspace: Workspace) -> None:
    agent = await sign_in(client, workspace, "agent")
    mine = await conversation(client, workspace, text="assigned to me")
    closed = await conversation(client, workspace, text="all done")
    await conversation(client, workspace, text="nobody's yet")
    execute(workspace, "UPDATE conversations SET assignee_id = ? WHERE id = ?", [agent["id"], mine["conversation"]])
    execute(workspace, "UPDATE conversations SET status = 'closed' WHERE id = ?", [closed["conversation"]])
    pages = {view: (await client.get(f"/inbox?view={view}")).text for view in ("open", "mine", "unassigned", "closed")}
    assert "assigned to me" in pages["mine"] and "nobody&#39;s yet" not in pages["mine"]
    assert "nobody&#39;s yet" in pages["unassigned"] and "assigned to me" not in pages["unassigned"]
    assert "all done" in pages["closed"] and "all done" not in pages["open"]
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', pages["open"]))
    assert counts == {"open": "2", "mine": "1", "unassigned": "1", "closed": "1"}
    assert 'aria-label="1 unread"' in pages["mine"]


@on_shared_app
async def test_the_channel_filter(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await conversation(client, workspace, text="from the page")
    await web.login("agent")
    assert "from the page" in (await client.get("/inbox?channel=messenger")).text
    assert "from the page" not in (await client.get("/inbox?channel=whatsapp")).text
    assert "from the page" in (await client.get("/inbox?channel=nonsense")).text  # ignored, not a 400


@on_shared_app
async def test_pages_ignore_hand_edited_queries(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await web.login("agent")
    assert (await client.get("/inbox?view=everything")).status_code == 200
    assert (await client.get("/contacts?field=1bad&subscribed=maybe&cursor=%%%")).status_code == 200


KINDS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("text", {"text": "plain words"}, ["plain words"]),
    ("image", {"kind": "image", "attachments": [{"type": "image", "url": "https://scontent.xx.fbcdn.net/a.jpg"}]},
     ['<img src="https://scontent.xx.fbcdn.net/a.jpg" alt="Photo"']),
    ("video", {"kind": "video", "attachments": [{"type": "video", "url": "https://video.xx.fbcdn.net/v.mp4"}]},
     ['<video src="https://video.xx.fbcdn.net/v.mp4"']),
    ("audio", {"kind": "audio", "attachments": [{"type": "audio", "url": "https://cdn.fbsbx.com/a.mp4"}]},
     ['<audio src="https://cdn.fbsbx.com/a.mp4"']),
    ("file", {"kind": "file", "attachments": [{"type": "file", "url": "https://cdn.fbsbx.com/menu.pdf"}]},
     ['href="https://cdn.fbsbx.com/menu.pdf"', "File"]),
    ("whatsapp media", {"kind": "image", "attachments": [{"type": "image", "url": None, "media_id": "m1"}]},
     ["WhatsApp media: open it in the WhatsApp Business app"]),
    ("story reply", {"kind": "story_reply", "text": "love it",
                     "payload": {"story_id": "1", "story_url": "https://lookaside.fbsbx.com/story.jpg"}},
     ["Replied to your story", '<img class="msg-story" src="https://lookaside.fbsbx.com/story.jpg"', "love it"]),
    ("story mention", {"kind": "story_mention",
                       "attachments": [{"type": "story_mention", "url": "https://lookaside.fbsbx.com/m.jpg"}]},
     ['src="https://lookaside.fbsbx.com/m.jpg" alt="Mentioned you in their story"']),
    ("comment", {"kind": "comment", "text": "price?", "payload": {
        "comment_id": "c1", "post_id": "p1", "permalink_url": "https://www.facebook.com/p/1"}},
     ["Commented on your post", 'href="https://www.facebook.com/p/1"', "Open the post"]),
    ("postback", {"kind": "postback", "text": "Get Started", "payload": {"title": "Get Started", "payload": "GS"}},
     ["Tapped a button", "Get Started"]),
    ("quick reply", {"kind": "quick_reply", "text": "Large", "payload": {"payload": "SIZE_L"}},
     ["Tapped a quick reply", "Large"]),
    ("whatsapp list", {"kind": "interactive", "text": "Tbilisi",
                       "payload": {"type": "list_reply", "id": "tb", "title": "Tbilisi"}}, ["Picked an option"]),
    ("referral", {"kind": "referral", "payload": {"ref": "summer", "source": "SHORTLINK", "type": "OPEN_THREAD"}},
     ["Came from a link", "SHORTLINK · summer"]),
    ("reaction", {"kind": "reaction", "payload": {"target": "m1", "action": "react", "emoji": "❤"}}, ["Reacted ❤"]),
    ("location", {"kind": "location", "attachments": [{"type": "location", "latitude": 41.7, "longitude": 44.8,
                                                         "name": "Old Town"}]},
     ["Location: Old Town", 'href="https://www.openstreetmap.org/?mlat=41.7&amp;mlon=44.8']),
    ("unsupported", {"kind": "unsupported"}, ["A message this inbox cannot show"]),
    ("deleted", {"kind": "text", "payload": {"deleted": True}}, ["The sender deleted this message."]),
    ("agent reply read", {"direction": "out", "sent_by": "user", "text": "On our way", "status": "read"},
     ["On our way", 'data-status="read">Read']),
    ("human agent tag", {"direction": "out", "sent_by": "user", "text": "Late answer", "status": "delivered",
                         "tag": "HUMAN_AGENT", "messaging_type": "MESSAGE_TAG"},
     ["Delivered · sent with the HUMAN_AGENT tag"]),
    ("failed send", {"direction": "out", "sent_by": "user", "text": "too late", "status": "failed",
                     "error_code": "10", "error_message": "outside the allowed window"},
     ["Not delivered: outside the allowed window (Meta code 10)", "msg-failed"]),
    ("bot buttons", {"direction": "out", "sent_by": "bot", "text": "Pick one", "status": "sent",
                     "payload": {"buttons": [{"title": "Rooms"}, {"title": "Prices"}]}},
     ["<li>Rooms</li><li>Prices</li>", '<span class="chip">Bot</span>']),
    ("ai with passages", {"direction": "out", "sent_by": "bot", "text": "We open at 9.", "status": "sent",
                          "payload": {"meta": {"provider": "anthropic", "model": "claude-x", "passages": [
                              {"title": "Hours", "heading": "Weekdays"}, {"title": "FAQ", "heading": ""}]}}},
     ["AI assistant", "Answered from 2 knowledge passages · claude-x", "Hours › Weekdays", "<li>FAQ</li>"]),
    ("echo", {"direction": "out", "sent_by": "echo", "text": "from the phone", "status": "sent"},
     ["Sent outside this inbox"]),
    ("template", {"direction": "out", "sent_by": "user", "kind": "template", "status": "sent",
                  "payload": {"template": {"name": "order_update", "language": "en_US"}}},
     ["WhatsApp template: <q>order_update (en_US)</q>"]),
]


@on_shared_app
@on_shared_app
@pytest.mark.parametrize(("name", "values", "expected"), KINDS, ids=[k[0] for k in KINDS])
async def test_the_thread_renders_every_message_kind(web: Web, name: str, values: dict[str, Any], expected: list[str]) -> None:
    client, workspace = web.client, web.workspace
    ids = await conversation(client, workspace)
    message_id = add_message(workspace, ids, **values)
    await web.login("agent")
    page = (await client.get(f"/inbox?conversation={ids['conversation']}")).text
    item = page[page.index(f'id="m-{message_id}"'):]
    item = item[:item.index("</li>\n", item.index('class="bubble"')) if "</li>\n" in item else None]
    for text in expected:
        assert text in page, f"{name}: {text!r}"
    fragment = (await client.get(f"/inbox/fragments/message/{message_id}")).text
    for text in expected:
        if not text.startswith("msg-"):
            assert text in fragment, f"{name} (fragment): {text!r}"


@on_shared_app
async def test_notes_sit_between_messages_and_say_they_are_private(web: Web) -> None:
    client, workspace = web.client, web.workspace
    ids = await conversation(client, workspace, text="before the note")
    agent = await sign_in(client, workspace, "agent", name="Ana")
    add_note(workspace, ids, "VIP, be nice", user_id=agent["id"])
    later = to_iso(utcnow() + timedelta(seconds=1))  # not the note's millisecond: a tie shows the message first
    add_message(workspace, ids, text="after the note", occurred_at=later, created_at=later)
    page = (await client.get(f"/inbox?conversation={ids['conversation']}")).text
    page = page[page.index('id="timeline"'):]
    assert page.index("before the note") < page.index("VIP, be nice") < page.index("after the note")
    note = page[page.index('class="note"'):page.index("VIP, be nice")]
    assert "Ana" in note and "Private note" in note


@on_shared_app
async def test_hostile_content_is_text_never_markup(web: Web) -> None:
    client, workspace = web.client, web.workspace
    ids = await conversation(client, workspace, text=HOSTILE)
    execute(workspace, "UPDATE contacts SET name = ?, username = ?, fields = ? WHERE id = ?",
            [HOSTILE, "<b>user</b>", '{"note": "<svg onload=alert(1)>"}', ids["contact"]])
    execute(workspace, "INSERT INTO contact_tags (contact_id, tag, created_at) VALUES (?, ?, 'x')",
            [ids["contact"], "<i>tag</i>"])
    bad_link = add_message(workspace, ids, kind="image", attachments=[
        {"type": "image", "url": "javascript:alert(1)"}, {"type": "file", "url": "data:text/html,<script>x</script>"}],
        payload={"story_url": "javascript:alert(2)", "permalink_url": "javascript:alert(3)"})
    add_note(workspace, ids, HOSTILE)
    await web.login("agent")
    pages = [
        (await client.get(f"/inbox?conversation={ids['conversation']}")).text,
        (await client.get("/inbox/fragments/list")).text,
        (await client.get(f"/inbox/fragments/thread/{ids['conversation']}")).text,
        (await client.get(f"/inbox/fragments/timeline/{ids['conversation']}")).text,
        (await client.get(f"/inbox/fragments/message/{bad_link}")).text,
        (await client.get(f"/contacts/{ids['contact']}")).text,
        (await client.get("/contacts")).text,
    ]
    for page in pages:
        assert "<script>alert" not in page and "<img src=x" not in page and "<svg onload" not in page
        assert "<i>tag</i>" not in page and "<b>user</b>" not in page
        assert "javascript:" not in page.replace("javascript:alert", "") or 'href="javascript' not in page
        assert 'href="javascript' not in page and 'src="javascript' not in page and 'href="data:' not in page
        _no_script_but_files(page)
    assert str(escape(HOSTILE)) in pages[0]  # shown, as text


@on_shared_app
async def test_a_long_thread_shows_the_newest_500_and_loads_earlier_ones(web: Web) -> None:
    client, workspace = web.client, web.workspace
    ids = await conversation(client, workspace, text="message 0")
    stored = [add_message(workspace, ids, text=f"message {i}") for i in range(1, 520)]
    await web.login("agent")
    page = (await client.get(f"/inbox?conversation={ids['conversation']}")).text
    assert page.count('class="msg ') == 500
    assert "message 519" in page and ">message 19<" not in page and ">message 20<" in page
    first_shown = stored[19]
    assert f'data-before="{first_shown}"' in page and "Load earlier messages" in page
    older = (await client.get(f"/inbox/fragments/timeline/{ids['conversation']}?before={first_shown}")).text
    assert older.count('class="msg ') == 20 and ">message 0<" in older and 'data-older=""' in older


@on_shared_app
async def test_the_timeline_fragment_returns_only_what_is_new(web: Web) -> None:
    client, workspace = web.client, web.workspace
    ids = await conversation(client, workspace, text="old")
    last = add_message(workspace, ids, text="seen already")
    note = add_note(workspace, ids, "old note")
    new = add_message(workspace, ids, text="brand new")
    add_note(workspace, ids, "new note")
    await web.login("agent")
    fragment = (await client.get(
        f"/inbox/fragments/timeline/{ids['conversation']}?after_message={last}&after_note={note['id']}")).text
    assert f'id="m-{new}"' in fragment and "brand new" in fragment and "new note" in fragment
    assert "seen already" not in fragment and "old note" not in fragment


@on_shared_app
async def test_fragments_of_gone_things_are_404(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await web.login("agent")
    for path in ("/inbox/fragments/thread/424242", "/inbox/fragments/message/424242",
                 "/inbox/fragments/timeline/424242"):
        response = await client.get(path)
        assert response.status_code == 404 and 'data-fragment="gone"' in response.text


@on_shared_app
async def test_the_list_fragment_carries_the_counts(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await conversation(client, workspace, text="count me")
    await web.login("agent")
    page = (await client.get("/inbox?view=open")).text
    fragment = (await client.get("/inbox/fragments/list?view=open")).text
    for view, conversations in re.findall(r'data-count="(\w+)">(\d+)<', page):
        assert f'data-count="{view}" data-conversations="{conversations}"' in fragment
    assert "count me" in fragment and "<html" not in fragment


# --- the composer knows the policy ---------------------------------------------------------------

@pytest.mark.parametrize(("channel", "hours", "mode", "notice"), [
    ("messenger", 0.5, "free", "Reply window open: 23 h"),
    ("messenger", 30, "human_agent", "HUMAN_AGENT tag"),
    ("messenger", 24 * 8, "blocked", "has not written in the last 7 days"),
    ("whatsapp", 30, "template", "only an approved template"),
    ("whatsapp", 2.5, "free", "Reply window open: 21 h"),
])
async def test_the_composer_shows_what_can_be_sent(web: Web, channel: str, hours: float, mode: str, notice: str) -> None:
    client, workspace = web.client, web.workspace
    ids = await conversation(client, workspace)
    if channel == "whatsapp":
        wa = connect_channel(workspace, "whatsapp", "109876543210987", waba_id="555")
        execute(workspace, "UPDATE contacts SET channel_id = ? WHERE id = ?", [wa, ids["contact"]])
        execute(workspace, "UPDATE conversations SET channel_id = ? WHERE id = ?", [wa, ids["conversation"]])
    age_window(workspace, ids["contact"], hours=hours)
    await web.login("agent")
    page = (await client.get(f"/inbox?conversation={ids['conversation']}")).text
    composer = page[page.index('<form class="composer'):page.index("</form>", page.index('<form class="composer'))]
    assert f'data-mode="{mode}"' in composer and notice in composer
    assert ('<button type="submit" id="send-button" disabled>' in composer) == (mode == "blocked")
    assert ('id="template-picker" hidden' in composer) == (mode != "template")
    assert ("<textarea" in composer and "disabled></textarea>" in composer) == (mode in ("blocked", "template"))


async def test_a_dead_token_shows_a_banner_everywhere_and_blocks_the_composer(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    ids = await conversation(client, workspace)
    execute(workspace, "UPDATE channels SET status = 'needs_reauth', status_reason = 'token expired'")
    await sign_in(client, workspace, "agent")
    for path in ("/inbox", "/contacts", f"/contacts/{ids['contact']}"):
        page = (await client.get(path)).text
        assert 'id="reauth-banner"' in page and "needs to be reconnected" in page
        assert "Ask an admin of your workspace to reconnect it." in page
    page = (await client.get(f"/inbox?conversation={ids['conversation']}")).text
    assert 'data-mode="blocked"' in page and "channel needs to be reconnected" in page
    await sign_in(client, workspace, "admin")
    assert 'href="/settings/channels">Reconnect in Settings' in (await client.get("/inbox")).text


@on_shared_app
async def test_pages_carry_the_csrf_token_of_the_session(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await web.login("agent")
    token = csrf_of((await client.get("/inbox")).text)
    assert token == (await client.get("/api/v1/me")).json()["csrf_token"]


@on_shared_app
async def test_the_assignee_list_names_the_team(web: Web) -> None:
    client, workspace = web.client, web.workspace
    ids = await conversation(client, workspace)
    me = await sign_in(client, workspace, "agent", name="Ana")
    page = (await client.get(f"/inbox?conversation={ids['conversation']}")).text
    assert f'<option value="{me["id"]}">Ana (you)</option>' in page


@on_shared_app
async def test_canned_replies_are_offered(web: Web) -> None:
    client, workspace = web.client, web.workspace
    ids = await conversation(client, workspace)
    execute(workspace, "INSERT INTO canned_replies (shortcut, text, created_at, updated_at) VALUES "
                       "('hours', 'We open at 9 <sharp>', 'x', 'x')")
    await web.login("agent")
    page = (await client.get(f"/inbox?conversation={ids['conversation']}")).text
    assert 'data-text="We open at 9 &lt;sharp&gt;">/hours · We open at 9 &lt;sharp&gt;</option>' in page
