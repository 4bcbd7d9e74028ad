"""SQL-ish payloads in search and filter parameters, and addresses a tenant could try to point
the appliance at (issue 12, part 4). Every query parameter reaches SQLite as a bound value
(LIKE wildcards escaped): a payload matches nothing it does not literally contain, never
errors into a 5xx, and leaves the schema and the rows as they were. The Google Sheets step can
only name a spreadsheet id (its host is the operator's setting), and the backup's S3 endpoint is
the operator's environment, not something a workspace admin can set.

The http_request step's and outgoing webhooks' SSRF defences are proven in
tests/appliance/test_integrations_ssrf.py, tests/appliance/test_integrations_http_step.py and
tests/appliance/test_integrations_webhooks*.py; they are not repeated here."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    Shared,
    error_of,
    execute,
    on_shared_app,
    rows,
    shared,
)
from tests.appliance.web_helpers import Web, conversation, web  # noqa: F401
from tests.helpers import make_token

PAYLOADS = ["' OR '1'='1", "%", "_", "\\", "'; DROP TABLE contacts; --", '" OR 1=1 --',
            "ana') UNION SELECT email, role FROM users --", "*", "NEAR(a b)", "a\" OR \"b"]
NAMES = ["Ana Lima", "Bruno Costa"]
SHEETS = {"schema": "aat.flow/v1", "name": "Leads", "triggers": [{"type": "keyword", "keywords": ["lead"]}],
          "start": "g", "steps": {"g": {"type": "google_sheets", "spreadsheet_id": "1AbC_dEf-123", "sheet": "Leads",
                                       "values": ["{{contact.name}}"]}}}


def _schema(shared: Shared) -> list[dict[str, Any]]:
    return rows(shared.workspace, "SELECT type, name, sql FROM sqlite_master ORDER BY name")




async def _two_contacts(web: Web) -> list[int]:
    ids = []
    for name in NAMES:
        made = await conversation(web.client, web.workspace)
        execute(web.workspace, "UPDATE contacts SET name = ?, fields = '{\"plan\": \"pro\"}' WHERE id = ?",
                [name, made["contact"]])
        execute(web.workspace, "INSERT INTO contact_tags (contact_id, tag, created_at) VALUES (?, 'vip', 'x')",
                [made["contact"]])
        ids.append(made["contact"])
    return ids


@on_shared_app
@pytest.mark.parametrize("payload", PAYLOADS)
async def test_search_and_filter_payloads_match_only_what_they_literally_say(web: Web, payload: str) -> None:
    client, workspace = web.client, web.workspace
    await _two_contacts(web)
    agent = make_token(workspace, "agent")
    schema = rows(workspace, "SELECT type, name, sql FROM sqlite_master ORDER BY name")
    contacts = rows(workspace, "SELECT count(*) AS n FROM contacts")
    for params in ({"q": payload}, {"tag": payload}, {"field": f"plan:{payload}"}, {"q": payload, "tag": "vip"}):
        response = await client.get("/api/v1/contacts", params=params, headers=agent)
        assert response.status_code == 200, (params, response.text)
        assert response.json()["items"] == [], params  # nobody's name, tag or plan contains it
    for path, params in (("/api/v1/knowledge/search", {"q": payload}), ("/api/v1/contacts/export.csv", {"q": payload})):
        response = await client.get(path, params=params, headers=make_token(workspace, "admin"))
        assert response.status_code == 200, (path, response.text)
    assert "Ana Lima" not in response.text  # the CSV export's filter held as well
    await web.login("agent")
    page = await client.get("/contacts", params={"q": payload})
    assert page.status_code == 200 and "Ana Lima" not in page.text and "Bruno Costa" not in page.text
    assert rows(workspace, "SELECT type, name, sql FROM sqlite_master ORDER BY name") == schema
    assert rows(workspace, "SELECT count(*) AS n FROM contacts") == contacts


@on_shared_app
async def test_a_real_search_still_finds_its_contact(web: Web) -> None:
    """The control for the test above: the same calls with honest values do find people."""
    client, workspace = web.client, web.workspace
    await _two_contacts(web)
    agent = make_token(workspace, "agent")
    found = (await client.get("/api/v1/contacts", params={"q": "Ana Li", "tag": "vip", "field": "plan:pro"},
                              headers=agent)).json()["items"]
    assert {c["name"] for c in found} == {"Ana Lima"}


@on_shared_app
@pytest.mark.parametrize(("params", "status"), [
    ({"field": "plan' OR '1'='1"}, 422), ({"field": "x;DROP TABLE contacts"}, 422),
    ({"channel": "messenger' OR 1=1"}, 422), ({"limit": "1; DELETE FROM contacts"}, 422),
])
async def test_filter_names_outside_their_grammar_are_refused(shared: Shared, params: dict[str, str], status: int) -> None:
    response = await shared.client.get("/api/v1/contacts", params=params, headers=make_token(shared.workspace, "agent"))
    error_of(response, status)


@on_shared_app
@pytest.mark.parametrize("assignee", ["1 OR 1=1", "me' --", "-1", "99999999999999999999"])
async def test_conversation_filters_refuse_payloads(shared: Shared, assignee: str) -> None:
    response = await shared.client.get("/api/v1/conversations", params={"assignee": assignee},
                                       headers=make_token(shared.workspace, "agent"))
    assert error_of(response, 400)["code"] == "invalid_query"


@on_shared_app
@pytest.mark.parametrize("spreadsheet", ["../../../v1/projects", "1AbCdEfGhIj@evil.example", "1AbCdEfGhIj/../x",
                                         "http://169.254.169.254/latest", "1AbC%2F..%2Fdefgh", "{{contact.name}}xxxx"])
async def test_a_sheets_step_cannot_name_anything_but_a_spreadsheet_id(shared: Shared, spreadsheet: str) -> None:
    document = copy.deepcopy(SHEETS)
    document["steps"]["g"]["spreadsheet_id"] = spreadsheet
    before = rows(shared.workspace, "SELECT count(*) AS n FROM flows")
    response = await shared.client.post("/api/v1/flows", json=document, headers=make_token(shared.workspace, "admin"))
    error_of(response, 422)
    assert rows(shared.workspace, "SELECT count(*) AS n FROM flows") == before


@on_shared_app
@pytest.mark.parametrize("body", [{"backup_s3_url": "http://169.254.169.254/latest/meta-data"},
                                  {"google_api_base": "http://127.0.0.1:8080"}, {"graph_api_base": "http://10.0.0.1"}])
async def test_a_workspace_admin_cannot_point_outside_endpoints_anywhere(shared: Shared, body: dict[str, str]) -> None:
    """Endpoints (S3, Google, Graph) are the operator's AAT_ settings; the workspace settings API
    refuses them as unknown fields."""
    response = await shared.client.put("/api/v1/settings/workspace", json=body,
                                       headers=make_token(shared.workspace, "owner"))
    assert error_of(response, 422)["code"]
