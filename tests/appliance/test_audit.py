"""The audit log: admin actions recorded with who, what, when and where; the hash chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from litestar.testing import AsyncTestClient

from appliance import audit
from appliance.settings import Settings
from appliance.store.rows import many
from appliance.store.workspace import Workspace
from tests.conftest import MASTER_KEY, fixture_bytes
from tests.helpers import connect_channel, ingest, make_token

PRICING = json.loads((Path(__file__).parents[1] / "fixtures" / "flows" / "pricing.json").read_text())


def _entries(workspace: Workspace) -> list[dict]:
    return workspace.gateway.read_sync(lambda db: many(db, "SELECT * FROM audit_log ORDER BY id"))


async def test_admin_actions_are_recorded_with_actor_and_address(
    client: AsyncTestClient, workspace: Workspace
) -> None:
    headers = make_token(workspace, "admin")
    channel = await client.post("/api/v1/channels", headers=headers, json={
        "type": "messenger", "external_id": "112233445566778", "access_token": "EAAG-secret-token"})
    flow = await client.post("/api/v1/flows", headers=headers, json=PRICING)
    await client.post(f"/api/v1/flows/{flow.json()['id']}/publish", headers=headers)
    await client.delete(f"/api/v1/channels/{channel.json()['id']}", headers=headers)
    entries = _entries(workspace)
    assert [(e["action"], e["target_kind"], e["target_id"]) for e in entries] == [
        ("channel.connect", "channel", channel.json()["id"]),
        ("flow.create", "flow", flow.json()["id"]),
        ("flow.publish", "flow", flow.json()["id"]),
        ("channel.disconnect", "channel", channel.json()["id"]),
    ]
    assert {(e["actor_kind"], e["actor_label"]) for e in entries} == {("token", "test-admin")}
    assert all(e["ip"] for e in entries)
    assert all("EAAG-secret-token" not in json.dumps(e) for e in entries)
    listed = (await client.get("/api/v1/audit", headers=headers)).json()["items"]
    assert [i["action"] for i in listed] == ["channel.disconnect", "flow.publish", "flow.create", "channel.connect"]


async def test_an_erasure_is_recorded_but_not_whom(client: AsyncTestClient, workspace: Workspace) -> None:
    connect_channel(workspace, "whatsapp", "109876543210987")
    await ingest(client, fixture_bytes("whatsapp_text"))
    headers = make_token(workspace, "agent")
    contact = (await client.get("/api/v1/contacts", headers=headers)).json()["items"][0]
    assert (await client.delete(f"/api/v1/contacts/{contact['id']}", headers=headers)).status_code == 204
    [entry] = _entries(workspace)
    assert (entry["action"], entry["target_kind"], entry["target_id"], entry["details"]) == (
        "contact.erase", "contact", None, "{}")
    assert "Giorgi" not in json.dumps(entry) and "995555123456" not in json.dumps(entry)


def test_the_chain_detects_an_edited_or_removed_entry(workspace: Workspace) -> None:
    actor = audit.Actor("system")
    for n in range(5):
        workspace.gateway.write_sync(lambda db: audit.record(db, actor, f"test.{n}"))
    assert workspace.gateway.read_sync(audit.verify) == (True, 5, None)
    workspace.gateway.write_sync(lambda db: db.execute("UPDATE audit_log SET action = 'forged' WHERE id = 3"))
    assert workspace.gateway.read_sync(audit.verify) == (False, 2, 3)
    workspace.gateway.write_sync(lambda db: db.execute("DELETE FROM audit_log WHERE id = 3"))
    assert workspace.gateway.read_sync(audit.verify) == (False, 2, 4)


def test_cli_records_and_verifies(tmp_path: Path) -> None:
    env = {**os.environ, "AAT_MASTER_KEY": MASTER_KEY, "AAT_DATA_DIR": str(tmp_path / "data")}
    cli = [str(Path(sys.executable).parent / "aat-appliance")]
    created = subprocess.run([*cli, "tokens", "create", "--name", "ci"], env=env, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    ok = subprocess.run([*cli, "audit", "verify"], env=env, capture_output=True, text=True)
    assert (ok.returncode, ok.stdout.strip()) == (0, "audit log intact: 1 entries verified")
    from appliance.store.workspace import direct_database

    with direct_database(Settings(data_dir=tmp_path / "data", master_key=MASTER_KEY)) as db:
        db.execute("UPDATE audit_log SET actor_label = 'someone else'")
    broken = subprocess.run([*cli, "audit", "verify"], env=env, capture_output=True, text=True)
    assert broken.returncode == 1
    assert "broken at entry 1" in broken.stderr
