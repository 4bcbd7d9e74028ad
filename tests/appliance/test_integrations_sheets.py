"""Google Sheets: the connection (manual PUT and the OAuth Connect button with PKCE), the
``google_sheets`` step through the real stack (signed webhook in, row appended at the Google
stand-in, message out to the Graph stand-in), token refresh and caching, errors taking
``on_error``, and tokens that are never readable at rest or in logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from litestar.testing import AsyncTestClient
from pydantic import SecretStr

from appliance.settings import Settings
from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import (  # noqa: F401 - shared is a fixture
    Shared,
    count,
    error_of,
    execute,
    on_shared_app,
    rows,
    shared,
    snapshot,
)
from tests.appliance.flow_run_helpers import ASSETS, publish_flow, say, sent, texts_of
from tests.appliance.integrations_helpers import files_containing, logged, quiet_http_loggers
from tests.helpers import connect_channel, make_token
from tests.standins.google_api import GoogleStandIn
from tests.standins.graph_api import GraphStandIn

SHEET_ID = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
HOSTED_ID, HOSTED_SECRET = "hosted-client.apps.googleusercontent.com", "hosted-secret-GOCSPX"
OWN_ID, OWN_SECRET = "own-client.apps.googleusercontent.com", "own-secret-GOCSPX-4711"


@pytest.fixture
def google_api() -> Iterator[GoogleStandIn]:
    standin = GoogleStandIn(client_id=HOSTED_ID, client_secret=HOSTED_SECRET).start()
    standin.clients[OWN_ID] = OWN_SECRET
    yield standin
    standin.stop()


@pytest.fixture
def settings(settings: Settings, google_api: GoogleStandIn, request: pytest.FixtureRequest) -> Settings:
    hosted = getattr(request, "param", True)
    return settings.model_copy(update={
        "google_api_base": google_api.base_url,
        "google_oauth_base": google_api.base_url,
        "google_authorize_url": f"{google_api.base_url}/o/oauth2/v2/auth",
        "google_client_id": HOSTED_ID if hosted else None,
        "google_client_secret": SecretStr(HOSTED_SECRET) if hosted else None,
    })


@pytest.fixture
def admin(workspace: Workspace) -> dict[str, str]:
    for channel, asset in ASSETS.items():
        connect_channel(workspace, channel, asset)
    return make_token(workspace, "admin")


LEADS_FLOW: dict[str, Any] = {
    "schema": "aat.flow/v1",
    "name": "Leads to a sheet",
    "triggers": [{"type": "keyword", "channels": ["messenger", "instagram", "whatsapp"], "keywords": ["save"],
                  "match": "contains"}],
    "start": "row",
    "steps": {
        "row": {"type": "google_sheets", "spreadsheet_id": SHEET_ID, "sheet": "Leads",
                "values": ["{{contact.first_name|anon}}", "{{contact.channel}}", '=IMPORTXML("http://x","//a")', "-5"],
                "next": "done", "on_error": "sorry"},
        "done": {"type": "message", "text": "Saved."},
        "sorry": {"type": "message", "text": "Could not save."},
    },
}


async def connect_manually(client: AsyncTestClient, admin: dict[str, str], refresh_token: str) -> dict[str, Any]:
    response = await client.put("/api/v1/integrations/google-sheets", headers=admin, json={
        "client_id": OWN_ID, "client_secret": OWN_SECRET, "refresh_token": refresh_token})
    assert response.status_code == 200, response.text
    return response.json()


def outcome(workspace: Workspace) -> list[str | None]:
    return [r["detail"] for r in rows(workspace, "SELECT detail FROM flow_step_events WHERE step = 'row' "
                                                 "AND event = 'completed' ORDER BY id")]


async def test_a_manual_connection_is_write_only_and_encrypted(
    client: AsyncTestClient, workspace: Workspace, settings: Settings, admin: dict[str, str], google_api: GoogleStandIn
) -> None:
    refresh = google_api.issue_refresh_token()
    body = await connect_manually(client, admin, refresh)
    assert body["connected"] is True and body["source"] == "manual" and body["status"] == "connected"
    shown = (await client.get("/api/v1/integrations/google-sheets", headers=admin)).json()
    for answer in (body, shown):
        assert refresh not in json.dumps(answer) and OWN_SECRET not in json.dumps(answer)
    stored = json.dumps(rows(workspace, "SELECT * FROM google_connection"))
    assert refresh not in stored and OWN_SECRET not in stored
    assert files_containing(settings.data_dir, refresh, OWN_SECRET) == []


@on_shared_app
@pytest.mark.parametrize("body", [
    {"client_id": OWN_ID, "client_secret": OWN_SECRET},
    {"client_id": OWN_ID, "client_secret": OWN_SECRET, "refresh_token": ""},
    {"client_id": OWN_ID, "client_secret": "has space", "refresh_token": "1//x"},
    {"client_id": OWN_ID, "client_secret": OWN_SECRET, "refresh_token": "1//x", "access_token": "ya29"},
])
async def test_bad_connections_are_422_and_change_nothing(shared: Shared, body: dict[str, Any]) -> None:
    before = snapshot(shared.workspace, "google_connection")
    response = await shared.client.put("/api/v1/integrations/google-sheets",
                                       headers=make_token(shared.workspace, "admin"), json=body)
    assert error_of(response, 422)["details"]
    assert snapshot(shared.workspace, "google_connection") == before


async def test_rows_are_appended_with_a_refreshed_token_that_is_cached_and_refreshed_again_on_401(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str],
    google_api: GoogleStandIn,
) -> None:
    await connect_manually(client, admin, google_api.issue_refresh_token())
    await publish_flow(client, admin, LEADS_FLOW)
    await say(client, "whatsapp", "save me")  # WhatsApp profile name "Giorgi"
    assert texts_of(await sent(graph_api, 1)) == ["Saved."]
    (refresh,) = google_api.token_requests("refresh_token")
    assert (refresh.body["client_id"], refresh.body["client_secret"]) == (OWN_ID, OWN_SECRET)
    append = google_api.appends()[0]
    # append_row quotes the range (%27Leads%27%21A1); the app's transport (aiohttp's URL handling)
    # may send ' and ! as they are, which Google reads the same: the decoded path is checked.
    assert unquote(append.path) == f"/v4/spreadsheets/{SHEET_ID}/values/'Leads'!A1:append"
    assert append.query == {"valueInputOption": "USER_ENTERED", "insertDataOption": "INSERT_ROWS"}
    assert append.body == {"majorDimension": "ROWS",
                           "values": [["Giorgi", "whatsapp", '\'=IMPORTXML("http://x","//a")', "-5"]]}

    await say(client, "messenger", "save this too")
    assert texts_of(await sent(graph_api, 2))[1:] == ["Saved."]
    assert len(google_api.token_requests("refresh_token")) == 1  # the cached access token served

    google_api.expire_access_tokens()  # an hour later: Google answers 401
    await say(client, "instagram", "save again")
    assert texts_of(await sent(graph_api, 3))[2:] == ["Saved."]
    assert len(google_api.token_requests("refresh_token")) == 2
    assert [len(google_api.appends()), len(google_api.rows[(SHEET_ID, "'Leads'!A1")])] == [4, 3]
    assert outcome(workspace) == [None, None, None]


@pytest.mark.parametrize("sheet", ["Leads/2026 #1?", "50% off", "O'Brien & Co", "Заявки"])
async def test_sheet_names_with_url_delimiters_reach_the_right_sheet(
    client: AsyncTestClient, graph_api: GraphStandIn, admin: dict[str, str], google_api: GoogleStandIn, sheet: str,
) -> None:
    await connect_manually(client, admin, google_api.issue_refresh_token())
    flow = json.loads(json.dumps(LEADS_FLOW))
    flow["steps"]["row"]["sheet"] = sheet
    await publish_flow(client, admin, flow)
    await say(client, "whatsapp", "save me")
    assert texts_of(await sent(graph_api, 1)) == ["Saved."]
    quoted = "'" + sheet.replace("'", "''") + "'!A1"
    assert list(google_api.rows) == [(SHEET_ID, quoted)]


async def test_a_revoked_grant_takes_on_error_and_asks_for_a_reconnect(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str],
    google_api: GoogleStandIn,
) -> None:
    await connect_manually(client, admin, google_api.issue_refresh_token())
    google_api.fail_refresh(400, "invalid_grant")
    await publish_flow(client, admin, LEADS_FLOW)
    await say(client, "messenger", "save")
    assert texts_of(await sent(graph_api, 1)) == ["Could not save."]
    state = (await client.get("/api/v1/integrations/google-sheets", headers=admin)).json()
    assert (state["status"], state["status_reason"]) == ("needs_reauth", "invalid_grant")
    await say(client, "messenger", "save")
    await sent(graph_api, 2)
    assert outcome(workspace) == ["error: google_auth_failed", "error: google_needs_reauth"]
    assert len(google_api.token_requests("refresh_token")) == 1  # not asked again
    await connect_manually(client, admin, google_api.issue_refresh_token())  # reconnecting heals it
    await say(client, "messenger", "save")
    assert texts_of(await sent(graph_api, 3))[2:] == ["Saved."]


@pytest.mark.parametrize(("status", "reason"), [(403, "http_403"), (404, "http_404"), (400, "http_400"),
                                                 (500, "http_500")])
async def test_sheets_errors_take_on_error(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str],
    google_api: GoogleStandIn, status: int, reason: str,
) -> None:
    await connect_manually(client, admin, google_api.issue_refresh_token())
    google_api.fail_append(status)
    await publish_flow(client, admin, LEADS_FLOW)
    await say(client, "messenger", "save")
    assert texts_of(await sent(graph_api, 1)) == ["Could not save."]
    assert outcome(workspace) == [f"error: {reason}"]
    assert len(google_api.appends()) == 1  # never retried: append is not idempotent


async def test_without_a_connection_the_step_takes_on_error(
    client: AsyncTestClient, workspace: Workspace, graph_api: GraphStandIn, admin: dict[str, str]
) -> None:
    await publish_flow(client, admin, LEADS_FLOW)
    await say(client, "messenger", "save")
    assert texts_of(await sent(graph_api, 1)) == ["Could not save."]
    assert outcome(workspace) == ["error: not_configured"]


# --- the Connect button ---------------------------------------------------------------------------

async def start_connect(client: AsyncTestClient, admin: dict[str, str]) -> str:
    response = await client.get("/integrations/google/connect", headers=admin, follow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def callback_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_the_connect_button_round_trip_stores_an_encrypted_refresh_token(
    client: AsyncTestClient, workspace: Workspace, settings: Settings, graph_api: GraphStandIn,
    admin: dict[str, str], google_api: GoogleStandIn, caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_http_loggers(caplog)
    response = await client.get("/integrations/google/connect", headers=admin, follow_redirects=False)
    location = response.headers["location"]
    assert location.startswith(f"{google_api.base_url}/o/oauth2/v2/auth?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["client_id"] == HOSTED_ID
    assert query["redirect_uri"] == f"{settings.public_url}/integrations/google/callback"
    assert (query["response_type"], query["access_type"], query["prompt"]) == ("code", "offline", "consent")
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert "spreadsheets" in query["scope"] and len(query["state"]) >= 40
    cookie = response.headers["set-cookie"]
    assert "aat_google_oauth=" in cookie and "HttpOnly" in cookie and "Path=/integrations/google" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    stored_state = rows(workspace, "SELECT * FROM oauth_states")[0]
    assert query["state"] not in json.dumps(stored_state)  # only its hash is kept

    back = google_api.consent(location)
    done = await client.get(callback_path(back))
    assert done.status_code == 200, done.text
    assert "Google Sheets is connected" in done.text
    exchange = google_api.token_requests("authorization_code")[0]
    assert exchange.body["redirect_uri"] == query["redirect_uri"] and exchange.body["code_verifier"]
    state = (await client.get("/api/v1/integrations/google-sheets", headers=admin)).json()
    assert (state["connected"], state["source"], state["email"]) == (True, "oauth", "owner@example.com")
    assert count(workspace, "oauth_states") == 0

    again = await client.get(callback_path(back))  # the same state, a second time
    assert error_of(again, 400)["code"] == "invalid_state"

    await publish_flow(client, admin, LEADS_FLOW)
    await say(client, "messenger", "save")
    assert texts_of(await sent(graph_api, 1)) == ["Saved."]
    refresh = google_api.token_requests("refresh_token")[0].body
    assert (refresh["client_id"], refresh["client_secret"]) == (HOSTED_ID, HOSTED_SECRET)

    secrets = [refresh["refresh_token"], exchange.body["code"], exchange.body["code_verifier"], HOSTED_SECRET,
               *google_api.access_tokens]
    assert files_containing(settings.data_dir, *secrets) == []
    assert json.dumps(rows(workspace, "SELECT * FROM google_connection")).count("1//") == 0
    text = logged(caplog)
    assert "google access token refreshed" in text and "google_sheets step" in text
    assert [s for s in secrets if s in text] == []


async def test_a_callback_in_another_browser_is_refused(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str], google_api: GoogleStandIn
) -> None:
    back = google_api.consent(await start_connect(client, admin))
    client.cookies.clear()  # the attacker's browser has the victim's link, not the cookie
    response = await client.get(callback_path(back))
    assert error_of(response, 400)["code"] == "invalid_state"
    assert count(workspace, "google_connection") == 0
    assert google_api.token_requests("authorization_code") == []


async def test_an_expired_state_is_refused(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str], google_api: GoogleStandIn
) -> None:
    back = google_api.consent(await start_connect(client, admin))
    execute(workspace, "UPDATE oauth_states SET expires_at = '2020-01-01T00:00:00.000Z'")
    assert error_of(await client.get(callback_path(back)), 400)["code"] == "invalid_state"
    assert count(workspace, "google_connection") == 0


@on_shared_app
@pytest.mark.parametrize("path", ["/integrations/google/callback",
                                  "/integrations/google/callback?state=unknown&code=4%2Fcode"])
async def test_a_callback_without_a_known_state_is_refused(shared: Shared, path: str) -> None:
    assert error_of(await shared.client.get(path), 400)["code"] == "invalid_state"


async def test_a_refusal_at_google_connects_nothing(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str]
) -> None:
    location = await start_connect(client, admin)
    state = parse_qs(urlsplit(location).query)["state"][0]
    response = await client.get("/integrations/google/callback", params={"state": state, "error": "access_denied"})
    assert response.status_code == 400 and "access_denied" in response.text
    assert count(workspace, "google_connection") == 0


@on_shared_app
async def test_connect_needs_an_admin(shared: Shared) -> None:
    client, workspace = shared.client, shared.workspace
    agent = await client.get("/integrations/google/connect", headers=make_token(workspace, "agent"),
                             follow_redirects=False)
    assert error_of(agent, 403)["code"] == "forbidden"
    assert error_of(await client.get("/integrations/google/connect", follow_redirects=False), 401)
    assert count(workspace, "oauth_states") == 0


@pytest.mark.parametrize("settings", [False], indirect=True, ids=["no-hosted-client"])
async def test_connect_without_a_hosted_client_says_how_to_connect(
    client: AsyncTestClient, admin: dict[str, str]
) -> None:
    response = await client.get("/integrations/google/connect", headers=admin, follow_redirects=False)
    assert error_of(response, 409)["code"] == "not_configured"
    state = (await client.get("/api/v1/integrations/google-sheets", headers=admin)).json()
    assert state["connected"] is False and state["connect_url"] is None


async def test_disconnect_erases_the_tokens_at_once_and_revokes_at_google(
    client: AsyncTestClient, workspace: Workspace, admin: dict[str, str], google_api: GoogleStandIn
) -> None:
    refresh = google_api.issue_refresh_token()
    await connect_manually(client, admin, refresh)
    response = await client.delete("/api/v1/integrations/google-sheets", headers=admin)
    assert response.status_code == 200
    assert response.json()["connected"] is False and response.json()["revoked_at_google"] is True
    assert count(workspace, "google_connection") == 0
    assert [r.body for r in google_api.requests if r.path == "/revoke"] == [{"token": refresh}]
    assert refresh not in google_api.refresh_tokens
