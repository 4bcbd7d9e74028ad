"""XSS (issue 12, part 4): user content in every place the server-rendered pages show it stays
text. Every value below is a script/handler payload, stored the way production stores it (the
API where there is one, else the row ingest or the outbox writes); each page is fetched as a
signed-in admin and must show the payload escaped (so it really was rendered) and never as
markup. The browser scripts build the DOM with text only: none of them uses an HTML sink.

Already proven elsewhere and not repeated: message text, contact names/usernames, field values,
tag names and notes in the inbox and contacts pages
(tests/appliance/test_web_pages.py::test_hostile_content_is_text_never_markup), flow names in the
list (tests/appliance/test_web_flows.py), what the sign-in page echoes
(tests/appliance/test_web_sessions.py::test_pages_escape_what_they_echo) and, in Chromium, a
hostile message and name (tests/e2e/browser/test_inbox.py::test_hostile_content_stays_text)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from markupsafe import escape

from tests.appliance import test_web_pages as pages
from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    Shared,
    execute,
    on_shared_app,
    rows,
    shared,
)
from tests.appliance.web_helpers import (  # noqa: F401
    Web,
    add_message,
    conversation,
    csrf_of,
    make_user,
    web,
)
from tests.helpers import connect_channel, make_token

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SHOWN = str(escape(HOSTILE))
STATIC = Path(__file__).parents[2] / "appliance" / "web" / "static"
PRICING = json.loads((Path(__file__).parents[1] / "fixtures" / "flows" / "pricing.json").read_text())


def _strings(value: Any) -> set[str]:
    """Every string anywhere in a JSON value."""
    if isinstance(value, str):
        return {value}
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return set().union(*(_strings(v) for v in items)) if items else set()


def _inert(page: str, *, shown: str = SHOWN) -> None:
    """The payload is on the page as text, nowhere as markup, and no inline code runs."""
    assert shown in page, "the hostile value was not rendered at all"
    assert "<script>alert" not in page and "<img src=x" not in page and "onerror=alert" not in page.replace(
        "onerror=alert(1)&gt;", "")
    pages._no_script_but_files(page)


@on_shared_app
async def test_message_payloads_comments_story_captions_and_cards_are_text(web: Web) -> None:
    client, workspace = web.client, web.workspace
    ids = await conversation(client, workspace)
    kinds: list[dict[str, Any]] = [
        {"kind": "comment", "text": HOSTILE, "payload": {"post_id": HOSTILE, "parent_id": "c1"}},
        {"kind": "story_reply", "text": HOSTILE, "payload": {"story_url": 'https://cdn.example/s.jpg" onerror="alert(1)'}},
        {"kind": "postback", "text": "Menu", "payload": {"title": HOSTILE, "payload": "MENU"}},
        {"kind": "interactive", "text": None, "payload": {"type": "list_reply", "title": HOSTILE}},
        {"kind": "referral", "payload": {"ref": HOSTILE, "source": "ADS", "ad_id": "1"}},
        {"kind": "contacts", "payload": {"contacts": [{"name": {"formatted_name": HOSTILE}}]}},
        {"kind": "image", "attachments": [{"type": "file", "url": "https://cdn.example/a.pdf", "title": HOSTILE}]},
        {"direction": "out", "sent_by": "bot", "text": "Cards", "status": "sent", "payload": {
            "cards": [{"title": HOSTILE, "subtitle": HOSTILE}], "buttons": [{"title": HOSTILE}],
            "meta": {"provider": "anthropic", "model": HOSTILE, "passages": [{"title": HOSTILE, "heading": HOSTILE}]}}},
        {"direction": "out", "sent_by": "user", "kind": "template", "status": "failed", "error_code": "131",
         "error_message": HOSTILE, "payload": {"template": {"name": HOSTILE, "language": "en"}}},
    ]
    made = [add_message(workspace, ids, **values) for values in kinds]
    await web.login("admin")
    thread = (await client.get(f"/inbox?conversation={ids['conversation']}")).text
    _inert(thread)
    assert 'onerror="alert(1)' not in thread  # the story URL's quote could not end the attribute
    for message_id, values in zip(made, kinds, strict=True):
        fragment = (await client.get(f"/inbox/fragments/message/{message_id}")).text
        _inert(fragment, shown=SHOWN if values.get("kind") != "story_reply" else "&lt;script&gt;")


@on_shared_app
async def test_settings_pages_show_names_replies_documents_and_hooks_as_text(web: Web) -> None:
    client, workspace = web.client, web.workspace
    admin = make_token(workspace, "owner")
    make_user(workspace, "agent", name=HOSTILE)
    connect_channel(workspace, "messenger", "990011223344", name=HOSTILE)
    reply = await client.post("/api/v1/canned-replies", json={"shortcut": "xss", "text": HOSTILE}, headers=admin)
    assert reply.status_code == 201, reply.text
    doc = await client.post("/api/v1/knowledge", json={"title": HOSTILE, "text": "We open at 10."}, headers=admin)
    assert doc.status_code == 201, doc.text
    hook = await client.post("/api/v1/webhooks", headers=admin, json={
        "url": "https://hooks.example.invalid/x", "events": ["contact.updated"], "active": False,
        "description": HOSTILE})
    assert hook.status_code == 201, hook.text
    await web.login("admin")
    # The settings pages are shells that settings.js fills from the JSON API with DOM text nodes
    # (see test_the_browser_scripts_use_no_html_sink): the HTML carries none of the values, and
    # the API's JSON cannot be sniffed into HTML by a browser.
    for path, api in (("/settings/team", "/api/v1/users"), ("/settings/channels", "/api/v1/channels"),
                      ("/settings/replies", "/api/v1/canned-replies"), ("/settings/ai", "/api/v1/knowledge"),
                      ("/settings/integrations", "/api/v1/webhooks")):
        page = (await client.get(path)).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
        pages._no_script_but_files(page)
        served = await client.get(api)
        assert served.status_code == 200 and HOSTILE in _strings(served.json()), api
        assert served.headers["content-type"].startswith("application/json"), api
        assert served.headers.get("x-content-type-options") == "nosniff", api
    ids = await conversation(client, workspace)
    inbox = (await client.get(f"/inbox?conversation={ids['conversation']}")).text
    _inert(inbox)  # the composer's canned replies, the assignee list, the channel filter


@on_shared_app
async def test_flow_names_and_step_text_in_the_list_builder_and_dashboard_are_text(web: Web) -> None:
    client, workspace = web.client, web.workspace
    document = copy.deepcopy(PRICING)
    document["name"] = HOSTILE
    for step in document["steps"].values():
        if "text" in step:
            step["text"] = HOSTILE
    created = await client.post("/api/v1/flows", json=document, headers=make_token(workspace, "owner"))
    assert created.status_code == 201, created.text
    await web.login("admin")
    _inert((await client.get("/flows")).text)
    builder = (await client.get(f"/flows/{created.json()['id']}")).text
    _inert(builder)
    dashboard = (await client.get("/dashboard")).text
    pages._no_script_but_files(dashboard)
    assert "<script>alert" not in dashboard


@on_shared_app
async def test_broadcast_names_are_text(web: Web) -> None:
    client, workspace = web.client, web.workspace
    created = await client.post("/api/v1/broadcasts", headers=make_token(workspace, "owner"),
                                json={"name": HOSTILE, "message": {"text": HOSTILE}})
    assert created.status_code == 201, created.text
    await web.login("admin")
    _inert((await client.get("/broadcasts")).text)


@on_shared_app
async def test_custom_field_names_and_tags_in_filters_and_profiles_are_text(web: Web) -> None:
    client, workspace = web.client, web.workspace
    ids = await conversation(client, workspace)
    execute(workspace, "UPDATE contacts SET fields = ? WHERE id = ?", [json.dumps({HOSTILE: "gold"}), ids["contact"]])
    execute(workspace, "INSERT INTO contact_tags (contact_id, tag, created_at) VALUES (?, ?, 'x')",
            [ids["contact"], HOSTILE])
    await web.login("admin")
    for path in ("/contacts", f"/contacts/{ids['contact']}", f"/inbox?conversation={ids['conversation']}"):
        _inert((await client.get(path)).text)


def test_the_browser_scripts_use_no_html_sink() -> None:
    """Client-side rendering (the flow builder's step cards, live inbox updates, toasts) goes
    through textContent and DOM nodes: no innerHTML, outerHTML, insertAdjacentHTML,
    document.write, eval, new Function or string timers anywhere; fragments from the server are
    parsed inertly (DOMParser) after the server escaped them."""
    sinks = re.compile(r"\.(innerHTML|outerHTML)\s*[+]?=|insertAdjacentHTML|document\.write|\beval\s*\(|"
                       r"new\s+Function\s*\(|set(Timeout|Interval)\s*\(\s*['\"`]")
    scripts = sorted(STATIC.glob("*.js"))
    assert len(scripts) >= 10
    for script in scripts:
        found = sinks.search(script.read_text())
        assert found is None, f"{script.name}: {found.group(0) if found else ''}"
