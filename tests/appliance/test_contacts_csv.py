"""Contacts as CSV (``GET /api/v1/contacts/export.csv``, ``POST /api/v1/contacts/import``) and
the list filters ``field=`` and ``subscribed=``: a round trip changes nothing, a dry run
writes nothing, a file with one bad row writes nothing and says where, limits hold."""

from __future__ import annotations

import csv
import io
import itertools
import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from appliance.contacts import csv_io
from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    Shared,
    detail_paths,
    error_of,
    execute,
    messenger_text,
    on_shared_app,
    rows,
    shared,
    snapshot,
    whatsapp_text,
)
from tests.helpers import connect_channel, ingest, make_token

_ids = itertools.count(1)
TABLES = ("contacts", "contact_tags", "events", "audit_log")


def _csv(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def _read(body: bytes) -> list[dict[str, str]]:
    text = body.decode("utf-8")
    assert text.startswith("\ufeff"), "a BOM, so spreadsheets read UTF-8"
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


async def _import(client: AsyncTestClient, headers: dict[str, str], data: bytes, *, dry_run: bool = False,
                  content_type: str = "text/csv") -> Any:
    url = "/api/v1/contacts/import" + ("?dry_run=true" if dry_run else "")
    return await client.post(url, content=data, headers={**headers, "Content-Type": content_type})


async def _page(client: AsyncTestClient, workspace: Workspace) -> tuple[int, str]:
    """A Messenger channel of its own (a unique Page) with one contact who wrote to it."""
    n = next(_ids)
    page = f"99100{n:08d}"
    channel = connect_channel(workspace, "messenger", page)
    psid = f"55{n:010d}"
    await ingest(client, messenger_text(psid, f"m_csv_{n}", page=page))
    return channel, psid


# --- round trip (its own app: counts every contact) ------------------------------------------------

async def test_export_then_import_changes_nothing(client: AsyncTestClient, workspace: Workspace) -> None:
    admin = make_token(workspace, "admin")
    connect_channel(workspace, "messenger", "112233445566778")
    connect_channel(workspace, "whatsapp", "109876543210987")
    await ingest(client, messenger_text("2460001", "m_rt_1", text="hi"))
    await ingest(client, whatsapp_text("995555000111", "wamid.rt1", name="Nino Beridze"))
    contacts = rows(workspace, "SELECT id FROM contacts ORDER BY id")
    execute(workspace, """UPDATE contacts SET name = '=HYPERLINK("http://evil.example")', phone = '+4915112345678',
                          fields = '{"plan": "pro", "visits": 3, "vip": true}', subscribed = 0 WHERE id = ?""",
            [contacts[0]["id"]])
    execute(workspace, "INSERT INTO contact_tags (contact_id, tag, created_at) VALUES (?, 'vip', 'x'), (?, 'b 2', 'x')",
            [contacts[0]["id"], contacts[0]["id"]])
    exported = await client.get("/api/v1/contacts/export.csv", headers=admin)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert 'attachment; filename="contacts-' in exported.headers["content-disposition"]
    table = _read(exported.content)
    assert list(table[0]) == [*csv_io.COLUMNS, "field.plan", "field.vip", "field.visits"]
    first = next(r for r in table if r["id"] == str(contacts[0]["id"]))
    assert first["name"] == '\'=HYPERLINK("http://evil.example")', "a formula is exported as text"
    assert first["phone"] == "'+4915112345678"
    assert (first["tags"], first["subscribed"], first["field.plan"], first["field.visits"], first["field.vip"]) == \
        ("b 2;vip", "false", "pro", "3", "true")
    wa = next(r for r in table if r["channel"] == "whatsapp")
    assert wa["external_id"] == "995555000111" and wa["name"] == "Nino Beridze"

    before = snapshot(workspace, "contacts", "contact_tags")
    preview = await _import(client, admin, exported.content, dry_run=True)
    assert preview.status_code == 200, preview.text
    assert {k: preview.json()[k] for k in ("rows", "create", "update", "unchanged", "invalid")} == \
        {"rows": 2, "create": 0, "update": 0, "unchanged": 2, "invalid": 0}
    done = await _import(client, admin, exported.content)
    assert done.status_code == 200, done.text
    assert done.json() == {"dry_run": False, "rows": 2, "created": 0, "updated": 0, "unchanged": 2}
    assert snapshot(workspace, "contacts", "contact_tags") == before
    assert json.loads(rows(workspace, "SELECT fields FROM contacts WHERE id = ?", [contacts[0]["id"]])[0]["fields"]) \
        == {"plan": "pro", "visits": 3, "vip": True}, "types kept"
    actions = [r["action"] for r in rows(workspace, "SELECT action FROM audit_log ORDER BY id")]
    assert actions[-2:] == ["contacts.export", "contacts.import"]


async def test_import_creates_and_updates(client: AsyncTestClient, workspace: Workspace) -> None:
    admin = make_token(workspace, "admin")
    connect_channel(workspace, "messenger", "112233445566778")
    connect_channel(workspace, "whatsapp", "109876543210987")
    await ingest(client, messenger_text("2460001", "m_cu_1"))
    await ingest(client, whatsapp_text("995555000222", "wamid.cu1", name="Old Name"))
    existing = rows(workspace, "SELECT id, external_id FROM contacts ORDER BY id")
    events_before = rows(workspace, "SELECT coalesce(max(id), 0) AS n FROM events")[0]["n"]
    data = _csv("channel,external_id,name,phone,subscribed,tags,field.plan\n"
                "messenger,2460001,Ana Lima,,no,vip;returning,gold\n"
                "whatsapp,995555000222,,,,,\n"
                "whatsapp,995555000333,Levan Kapanadze,,true,new,\n"
                "messenger,2460999,,,,,")
    response = await _import(client, admin, data)
    assert response.status_code == 200, response.text
    assert response.json() == {"dry_run": False, "rows": 4, "created": 2, "updated": 1, "unchanged": 1}
    ana = (await client.get(f"/api/v1/contacts/{existing[0]['id']}", headers=admin)).json()
    assert (ana["name"], ana["first_name"], ana["last_name"]) == ("Ana Lima", "Ana", "Lima")
    assert (ana["subscribed"], ana["tags"], ana["fields"]) == (False, ["returning", "vip"], {"plan": "gold"})
    levan = rows(workspace, "SELECT * FROM contacts WHERE external_id = '995555000333'")[0]
    assert (levan["wa_id"], levan["phone"], levan["name"], levan["first_name"]) == \
        ("995555000333", "995555000333", "Levan Kapanadze", "Levan")
    unnamed = rows(workspace, "SELECT name, subscribed FROM contacts WHERE external_id = '2460999'")[0]
    assert unnamed == {"name": None, "subscribed": 1}
    types = [r["type"] for r in rows(workspace, "SELECT type FROM events WHERE id > ? ORDER BY id", [events_before])]
    assert sorted(types) == ["contact.created", "contact.created", "contact.updated"]


async def test_a_type_needs_a_channel_id_when_several_are_connected(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    admin = make_token(workspace, "admin")
    first = connect_channel(workspace, "messenger", "112233445566778")
    connect_channel(workspace, "messenger", "112233445566779")
    preview = await _import(client, admin, _csv("channel,external_id\nmessenger,1\n"), dry_run=True)
    assert preview.json()["errors"] == [{"row": 2, "path": "row 2.channel", "message":
                                         "2 messenger channels are connected: add a channel_id column to say which one"}]
    ok = await _import(client, admin, _csv(f"channel_id,external_id\n{first},1\n"))
    assert ok.status_code == 200 and ok.json()["created"] == 1


# --- checking (one app for the module; each test its own channel) -----------------------------------

@on_shared_app
async def test_a_dry_run_reports_every_row_and_writes_nothing(shared: Shared) -> None:
    client, workspace = shared.client, shared.workspace
    admin = make_token(workspace, "admin")
    channel, psid = await _page(client, workspace)
    before = snapshot(workspace, *TABLES)
    data = _csv("channel_id,external_id,name,subscribed,tags,field.plan\n"
                f"{channel},{psid},Known Person,yes,a;b,pro\n"
                f"{channel},new-1,New Person,,,\n"
                f"{channel},,Nobody,,,\n"
                f"999999,x1,,,,\n"
                f"{channel},x2,,maybe,,\n"
                f"{channel},x3,,,bad/tag,\n"
                f"{channel},new-1,Again,,,\n")
    response = await _import(client, admin, data, dry_run=True)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["rows"], report["create"], report["update"], report["invalid"]) == (7, 1, 1, 5)
    assert [(e["row"], e["path"]) for e in report["errors"]] == [
        (4, "row 4.external_id"), (5, "row 5.channel_id"), (6, "row 6.subscribed"), (7, "row 7.tags"),
        (8, "row 8.external_id")]
    assert "the same contact as row 3" in report["errors"][-1]["message"]
    assert report["preview"][0] == {"row": 2, "action": "update", "channel": "messenger", "external_id": psid,
                                    "contact_id": report["preview"][0]["contact_id"], "name": "Known Person",
                                    "tags": ["a", "b"], "fields": {"plan": "pro"}, "errors": []}
    assert snapshot(workspace, *TABLES) == before


@on_shared_app
async def test_one_bad_row_and_nothing_is_imported(shared: Shared) -> None:
    client, workspace = shared.client, shared.workspace
    admin = make_token(workspace, "admin")
    channel, psid = await _page(client, workspace)
    before = snapshot(workspace, *TABLES)
    data = _csv(f"channel_id,external_id,name\n{channel},{psid},Renamed\n{channel},ok-2,Fine\n{channel},bad id!,X\n")
    response = await _import(client, admin, data)
    error = error_of(response, 422)
    assert error["code"] == "invalid_import"
    assert "nothing was saved" in error["message"]
    assert error["details"] == [{"path": "row 4.external_id",
                                 "message": "is not an id (letters, digits and . _ : - only, up to 128)"}]
    assert snapshot(workspace, *TABLES) == before


@pytest.mark.parametrize(("data", "message"), [
    (b"channel,external_id,colour\nmessenger,1,red\n", "the header line cannot be used"),
    (b"channel,name\nmessenger,Ana\n", "the header line cannot be used"),
    (b"external_id,external_id,channel\n1,1,messenger\n", "the header line cannot be used"),
    (b"channel,external_id,field.1bad\nmessenger,1,x\n", "the header line cannot be used"),
    (b"channel,external_id\n", "the file has a header but no rows"),
    (b"", "the file is empty"),
    ("channel,external_id,name\nmessenger,1,Jos\xe9\n".encode("latin-1"), "the file is not UTF-8 text"),
    (b"channel,external_id\nmessenger,1,extra,cells\n", "more cells than the header has columns"),
])
@on_shared_app
async def test_files_that_cannot_be_read_are_refused(shared: Shared, data: bytes, message: str) -> None:
    client, workspace = shared.client, shared.workspace
    before = snapshot(workspace, *TABLES[:2])
    for dry_run in (True, False):
        response = await _import(client, make_token(workspace, "admin"), data, dry_run=dry_run)
        error = error_of(response, 422)
        assert error["code"] == "invalid_import" and message in error["message"], error
    assert snapshot(workspace, *TABLES[:2]) == before


@on_shared_app
async def test_too_many_rows(shared: Shared) -> None:
    data = ("channel,external_id\n" + "".join(f"messenger,{i}\n" for i in range(csv_io.MAX_ROWS + 1))).encode()
    response = await _import(shared.client, make_token(shared.workspace, "admin"), data, dry_run=True)
    assert error_of(response, 422)["code"] == "too_many_rows"


@on_shared_app
async def test_a_multipart_upload_and_semicolons(shared: Shared) -> None:
    client, workspace = shared.client, shared.workspace
    channel, _ = await _page(client, workspace)
    data = f"channel_id;external_id;name\n{channel};semi-1;Semi Colon\n".encode()
    response = await client.post("/api/v1/contacts/import", headers=make_token(workspace, "admin"),
                                 files={"file": ("contacts.csv", data, "text/csv")})
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1
    assert rows(workspace, "SELECT name FROM contacts WHERE external_id = 'semi-1'") == [{"name": "Semi Colon"}]


@on_shared_app
async def test_json_is_not_a_csv_file(shared: Shared) -> None:
    response = await shared.client.post("/api/v1/contacts/import", json={"rows": []},
                                        headers=make_token(shared.workspace, "admin"))
    assert error_of(response, 400)["code"] == "unsupported_media_type"


@on_shared_app
@pytest.mark.parametrize("path", ["/api/v1/contacts/export.csv", "/api/v1/contacts/import"])
async def test_agents_cannot_export_or_import(shared: Shared, path: str) -> None:
    method = shared.client.get if path.endswith(".csv") else shared.client.post
    response = await method(path, headers=make_token(shared.workspace, "agent"))
    assert error_of(response, 403)["message"] == "this needs the admin role or higher; you are agent"


@on_shared_app
async def test_export_follows_the_filters(shared: Shared) -> None:
    client, workspace = shared.client, shared.workspace
    channel, psid = await _page(client, workspace)
    _, other = await _page(client, workspace)
    contact = rows(workspace, "SELECT id FROM contacts WHERE external_id = ?", [psid])[0]["id"]
    execute(workspace, "UPDATE contacts SET fields = '{\"tier\": \"t-export\"}' WHERE id = ?", [contact])
    response = await client.get("/api/v1/contacts/export.csv?field=tier:t-export",
                                headers=make_token(workspace, "admin"))
    table = _read(response.content)
    assert [r["external_id"] for r in table] == [psid]


# --- list filters ---------------------------------------------------------------------------------

@on_shared_app
async def test_field_and_subscribed_filters(shared: Shared) -> None:
    client, workspace = shared.client, shared.workspace
    agent = make_token(workspace, "agent")
    _, a = await _page(client, workspace)
    _, b = await _page(client, workspace)
    ids = {psid: rows(workspace, "SELECT id FROM contacts WHERE external_id = ?", [psid])[0]["id"] for psid in (a, b)}
    execute(workspace, "UPDATE contacts SET fields = '{\"zone\": \"z-filter\", \"n\": 7, \"ok\": true}' WHERE id = ?",
            [ids[a]])
    execute(workspace, "UPDATE contacts SET fields = '{\"zone\": \"other\"}', subscribed = 0 WHERE id = ?", [ids[b]])

    async def found(query: str) -> set[str]:
        response = await client.get(f"/api/v1/contacts?{query}&limit=500", headers=agent)
        assert response.status_code == 200, response.text
        return {c["external_id"] for c in response.json()["items"]} & {a, b}

    assert await found("field=zone:z-filter") == {a}
    assert await found("field=n:7") == {a}
    assert await found("field=ok:true") == {a}
    assert await found("field=zone") == {a, b}
    assert await found("field=zone&subscribed=false") == {b}
    assert await found("subscribed=true&field=zone") == {a}
    for bad, path in (("field=1zone:x", "field"), ("field=zone:%00", "field"), ("subscribed=maybe", "subscribed")):
        assert detail_paths(await client.get(f"/api/v1/contacts?{bad}", headers=agent)) == [path], bad
