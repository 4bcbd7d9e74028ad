"""Tokens are deleted the moment a channel is disconnected: not in the database, not in a
full export of it; and they were never there in clear, only AES-256-GCM sealed."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import AsyncTestClient

from appliance.store.workspace import Workspace
from tests.appliance.api_helpers import rows
from tests.appliance.privacy_helpers import export_to, find_everywhere, open_export
from tests.helpers import make_token

TOKEN = "EAAG-page-token-Vq81xLr0Tz"


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
