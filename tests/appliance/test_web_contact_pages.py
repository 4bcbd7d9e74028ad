"""The contacts pages as the server renders them: search, filters, paging, import/export offers,
the profile, the erased notice, times in the workspace's zone."""

from __future__ import annotations

import re
from datetime import timedelta

from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from appliance.timeutil import to_iso, utcnow
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
    conversation,
    sign_in,
    web,
)

# --- contacts ------------------------------------------------------------------------------------

@on_shared_app
async def test_contacts_search_and_filters(web: Web) -> None:
    client, workspace = web.client, web.workspace
    ana = await conversation(client, workspace)
    ben = await conversation(client, workspace)
    execute(workspace, "UPDATE contacts SET name = 'Ana Lima', fields = '{\"plan\": \"pro\"}' WHERE id = ?",
            [ana["contact"]])
    execute(workspace, "UPDATE contacts SET name = 'Ben Stone', subscribed = 0 WHERE id = ?", [ben["contact"]])
    execute(workspace, "INSERT INTO contact_tags (contact_id, tag, created_at) VALUES (?, 'vip', 'x')", [ana["contact"]])
    await web.login("agent")
    found = {
        query: (await client.get(f"/contacts?{query}")).text
        for query in ("q=lima", "tag=vip", "field=plan&value=pro", "field=plan", "subscribed=false",
                      "channel=whatsapp")
    }
    assert "Ana Lima" in found["q=lima"] and "Ben Stone" not in found["q=lima"]
    assert "Ana Lima" in found["tag=vip"] and "Ben Stone" not in found["tag=vip"]
    assert "Ana Lima" in found["field=plan&value=pro"] and "Ben Stone" not in found["field=plan"]
    assert "Ben Stone" in found["subscribed=false"] and "Ana Lima" not in found["subscribed=false"]
    nobody = (await client.get(f"/contacts?channel=whatsapp&q={ana['psid']}")).text
    assert "No contacts match these filters" in nobody


@on_shared_app
async def test_contacts_page_through(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await conversation(client, workspace)
    channel = rows(workspace, "SELECT id FROM channels")[0]["id"]
    now = to_iso(utcnow())
    workspace.gateway.write_sync(lambda db: db.conn.executemany(
        "INSERT INTO contacts (channel_id, external_id, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        [(channel, f"x{i}", f"Paged person {i:03d}", now, now) for i in range(61)]))
    await web.login("agent")
    first = (await client.get("/contacts?q=Paged+person")).text
    assert first.count("<tr data-contact-id") == 50
    cursor = re.search(r'cursor=([A-Za-z0-9_\-]+)" rel="next"', first).group(1)
    second = (await client.get(f"/contacts?q=Paged+person&cursor={cursor}")).text
    assert second.count("<tr data-contact-id") == 11 and 'rel="next"' not in second


@on_shared_app
async def test_export_and_import_are_offered_to_admins_only(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await web.login("agent")
    page = (await client.get("/contacts")).text
    assert "Export CSV" not in page and "Import CSV" not in page
    await web.login("admin")
    page = (await client.get("/contacts?tag=vip")).text
    assert 'href="/api/v1/contacts/export.csv?tag=vip"' in page and "Import CSV" in page


@on_shared_app
async def test_a_contact_profile(web: Web) -> None:
    client, workspace = web.client, web.workspace
    ids = await conversation(client, workspace)
    execute(workspace, "UPDATE contacts SET name = 'Zoe Profile', fields = '{\"plan\": \"pro\"}' WHERE id = ?",
            [ids["contact"]])
    await web.login("agent")
    page = (await client.get(f"/contacts/{ids['contact']}")).text
    assert "<h1 id=\"contact-title\">Zoe Profile</h1>" in page
    assert f'href="/inbox?conversation={ids["conversation"]}"' in page
    assert f'href="/api/v1/contacts/{ids["contact"]}/export"' in page and "Erase contact" in page
    assert "<code>plan</code></td><td>pro</td>" in page
    missing = await client.get("/contacts/987654")
    assert missing.status_code == 404 and "This contact does not exist" in missing.text


@on_shared_app
async def test_erased_notice(web: Web) -> None:
    client, workspace = web.client, web.workspace
    await web.login("agent")
    assert "The contact was erased" in (await client.get("/contacts?erased=1")).text


async def test_times_use_the_workspace_time_zone(client: AsyncTestClient, workspace: Workspace) -> None:
    ids = await conversation(client, workspace)
    at = utcnow().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
    add_message(workspace, ids, text="noon UTC", occurred_at=to_iso(at))
    execute(workspace, "INSERT INTO workspace_settings (key, value) VALUES ('timezone', 'Asia/Tbilisi')")
    await sign_in(client, workspace, "agent")
    page = (await client.get(f"/inbox?conversation={ids['conversation']}")).text
    page = page[page.index('id="timeline"'):]
    item = page[page.index("noon UTC") - 600:page.index("noon UTC")]
    assert ">16:00</time>" in item
