"""Tokens are deleted the moment what they open is disconnected: a channel's page token, the
Google Sheets refresh token and client secret, an AI provider's API key, an outbound webhook's
signing secret. Not in the database, not in a full export of it; and they were never there in
clear, only AES-256-GCM sealed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from appliance.settings import Settings
from appliance.store.workspace import Workspace
from tests.appliance.ai_helpers import ANTHROPIC_KEY, OPENAI_KEY, configure_ai
from tests.appliance.api_helpers import rows
from tests.appliance.privacy_helpers import export_to, find_everywhere, open_export
from tests.helpers import make_token
from tests.standins.google_api import GoogleStandIn

TOKEN = "EAAG-page-token-Vq81xLr0Tz"
GOOGLE_ID, GOOGLE_SECRET = "own-client.apps.googleusercontent.com", "own-secret-GOCSPX-9931"


@pytest.fixture
def google_api() -> Iterator[GoogleStandIn]:
    standin = GoogleStandIn(client_id=GOOGLE_ID, client_secret=GOOGLE_SECRET).start()
    yield standin
    standin.stop()


@pytest.fixture
def settings(settings: Settings, google_api: GoogleStandIn) -> Settings:
    return settings.model_copy(update={"google_api_base": google_api.base_url,
                                       "google_oauth_base": google_api.base_url})


def _sealed(workspace: Workspace, sql: str) -> list[str]:
    """The sealed values a query returns, each ``v1:`` + base64: a fragment of each is what an
    export must not hold once they are erased."""
    values = [v for row in rows(workspace, sql) for v in row.values() if v]
    assert values and all(v.startswith("v1:") for v in values)
    return [v[3:40] for v in values]


async def test_a_disconnected_channel_leaves_no_token_behind(
    client: AsyncTestClient, workspace: Workspace, tmp_path: Path
) -> None:
    headers = make_token(workspace, "admin")
    created = await client.post("/api/v1/channels", headers=headers, json={
        "type": "messenger", "external_id": "100200300400", "access_token": TOKEN})
    assert created.status_code == 201, created.text
    [sealed] = [r["access_token_enc"] for r in rows(workspace, "SELECT access_token_enc FROM channels")]
    assert sealed.startswith("v1:") and TOKEN not in sealed
    before = open_export(export_to(workspace.settings, tmp_path, "before.aatx"))
    assert find_everywhere(before, [TOKEN]) == []  # sealed, never in clear
    assert find_everywhere(before, [sealed[3:40]]) == ["channels.access_token_enc: " + sealed[3:40]]

    assert (await client.delete(f"/api/v1/channels/{created.json()['id']}", headers=headers)).status_code == 200
    assert rows(workspace, "SELECT access_token_enc, status FROM channels") == [
        {"access_token_enc": None, "status": "disconnected"}]
    after = open_export(export_to(workspace.settings, tmp_path, "after.aatx"))
    assert find_everywhere(after, [TOKEN, sealed[3:40]]) == []


async def test_disconnecting_google_sheets_leaves_no_token_behind(
    client: AsyncTestClient, workspace: Workspace, google_api: GoogleStandIn, tmp_path: Path
) -> None:
    headers = make_token(workspace, "admin")
    refresh = google_api.issue_refresh_token()
    connected = await client.put("/api/v1/integrations/google-sheets", headers=headers, json={
        "client_id": GOOGLE_ID, "client_secret": GOOGLE_SECRET, "refresh_token": refresh})
    assert connected.status_code == 200, connected.text
    fragments = _sealed(workspace, "SELECT client_secret_enc, refresh_token_enc FROM google_connection")
    before = open_export(export_to(workspace.settings, tmp_path, "before.aatx"))
    assert find_everywhere(before, [refresh, GOOGLE_SECRET]) == []
    assert len(find_everywhere(before, fragments)) == 2

    assert (await client.delete("/api/v1/integrations/google-sheets", headers=headers)).status_code == 200
    after = open_export(export_to(workspace.settings, tmp_path, "after.aatx"))
    assert find_everywhere(after, [refresh, GOOGLE_SECRET, *fragments]) == []
    assert [r.body for r in google_api.requests if r.path == "/revoke"] == [{"token": refresh}]


async def test_removing_the_ai_settings_leaves_no_api_key_behind(
    client: AsyncTestClient, workspace: Workspace, tmp_path: Path
) -> None:
    headers = make_token(workspace, "admin")
    await configure_ai(client, headers, provider="openai")
    await configure_ai(client, headers, provider="anthropic")
    fragments = _sealed(workspace, "SELECT api_key_enc FROM ai_api_keys")
    assert len(fragments) == 2
    before = open_export(export_to(workspace.settings, tmp_path, "before.aatx"))
    assert find_everywhere(before, [ANTHROPIC_KEY, OPENAI_KEY]) == []

    assert (await client.delete("/api/v1/settings/ai", headers=headers)).status_code == 204
    after = open_export(export_to(workspace.settings, tmp_path, "after.aatx"))
    assert find_everywhere(after, [ANTHROPIC_KEY, OPENAI_KEY, *fragments]) == []


async def test_an_unsubscribed_webhook_leaves_no_secret_or_url_behind(
    client: AsyncTestClient, workspace: Workspace, tmp_path: Path
) -> None:
    headers = make_token(workspace, "admin")
    url = "https://hooks.example.com/services/T0001/sk-path-token-8802"
    created = await client.post("/api/v1/webhooks", headers=headers, json={"url": url, "events": ["flow.completed"]})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    fragments = _sealed(workspace, "SELECT url_enc, secret_enc FROM webhook_subscriptions")
    before = open_export(export_to(workspace.settings, tmp_path, "before.aatx"))
    assert find_everywhere(before, [secret, "sk-path-token-8802"]) == []

    assert (await client.delete(f"/api/v1/webhooks/{created.json()['id']}", headers=headers)).status_code == 204
    after = open_export(export_to(workspace.settings, tmp_path, "after.aatx"))
    assert find_everywhere(after, [secret, "sk-path-token-8802", *fragments]) == []
