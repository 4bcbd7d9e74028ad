"""Workspace export and import: the file is an SQLCipher 4 database with SQLCipher's defaults,
holds every table, is one consistent moment even while writes continue, and ``import``
verifies it and restores it under a new data key, refusing what it cannot trust."""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3

from appliance import audit
from appliance.errors import AatError
from appliance.privacy import export, restore
from appliance.settings import Settings
from appliance.store import connection
from appliance.store.keys import DataKeyFile, load_master_key
from appliance.store.workspace import Workspace, open_workspace
from tests.appliance.api_helpers import PAGE_ID, execute, messenger_text, value
from tests.appliance.privacy_helpers import PASSPHRASE, digests, export_to, open_export
from tests.conftest import MASTER_KEY
from tests.helpers import connect_channel, ingest

ACTOR = audit.Actor("cli", label="test")
OTHER_MASTER_KEY = base64.b64encode(b"o" * 32).decode()


async def _some_data(client: Any, workspace: Workspace) -> None:
    connect_channel(workspace, "messenger", PAGE_ID, token="EAAG-secret-page-token")
    for n in range(3):
        await ingest(client, messenger_text(f"24600011122{n:05d}", f"m_exp_{n}", text=f"order {n} of Ž"))
    flow = json.loads((Path(__file__).parents[1] / "fixtures" / "flows" / "pricing.json").read_text())
    workspace.gateway.write_sync(lambda db: audit.record(db, ACTOR, "test.entry"))
    from tests.helpers import make_token

    headers = make_token(workspace, "admin")
    created = await client.post("/api/v1/flows", json=flow, headers=headers)
    assert (await client.post(f"/api/v1/flows/{created.json()['id']}/publish", headers=headers)).status_code == 200


def _workspace_digests(workspace: Workspace) -> dict[str, tuple[int, str]]:
    return workspace.gateway.read_sync(lambda db: digests(db.conn))


def _quiet_export(workspace: Workspace, tmp_path: Path) -> tuple[Path, dict[str, tuple[int, str]]]:
    """An export taken while nothing changed (the app's own workers write now and then), and
    the workspace's digests at that moment."""
    for attempt in range(10):
        before = _workspace_digests(workspace)
        path = export_to(workspace.settings, tmp_path, f"quiet{attempt}.aatx")
        if _workspace_digests(workspace) == before:
            return path, before
        time.sleep(0.2)
    raise AssertionError("the workspace never stood still")


def _import_settings(tmp_path: Path, master_key: str = MASTER_KEY) -> Settings:
    return Settings(data_dir=tmp_path / "imported", master_key=master_key)


# --- export ----------------------------------------------------------------------------------

async def test_the_export_holds_every_table_row_for_row(client: Any, workspace: Workspace, tmp_path: Path) -> None:
    await _some_data(client, workspace)
    path, before = _quiet_export(workspace, tmp_path)
    conn = open_export(path)
    exported = digests(conn, skip=(export.MANIFEST, export.FILES))
    assert exported == before
    for table in ("messages", "flow_versions", "audit_log", "webhook_journal", "knowledge_chunks"):
        if table in exported:
            assert exported[table][0] > 0 or table == "knowledge_chunks", table
    manifest = dict(conn.execute("SELECT key, value FROM aat_export").fetchall())
    assert manifest["format"] == "aat-workspace-export/1"
    assert json.loads(manifest["tables"])["messages"] == 3


async def test_the_file_is_sqlcipher_4_with_default_settings(client: Any, workspace: Workspace, tmp_path: Path) -> None:
    await _some_data(client, workspace)
    path = export_to(workspace.settings, tmp_path)
    strict = sqlcipher3.connect(str(path))
    strict.execute("PRAGMA cipher_compatibility = 4")
    strict.execute(f"PRAGMA key = '{PASSPHRASE}'")
    assert strict.execute("SELECT count(*) FROM messages").fetchone()[0] == 3
    assert strict.execute("PRAGMA cipher_integrity_check").fetchall() == []
    assert path.read_bytes()[:16] != b"SQLite format 3\x00"  # encrypted from the first page
    wrong = sqlcipher3.connect(str(path))
    wrong.execute("PRAGMA key = 'not the passphrase'")
    with pytest.raises(sqlcipher3.DatabaseError):
        wrong.execute("SELECT count(*) FROM sqlite_master").fetchone()


async def test_tokens_stay_encrypted_inside_the_export(client: Any, workspace: Workspace, tmp_path: Path) -> None:
    await _some_data(client, workspace)
    conn = open_export(export_to(workspace.settings, tmp_path))
    token = conn.execute("SELECT access_token_enc FROM channels WHERE external_id = ?", [PAGE_ID]).fetchone()[0]
    assert token.startswith("v1:") and "EAAG-secret-page-token" not in token


def test_the_export_is_one_moment_while_writes_continue(workspace: Workspace, tmp_path: Path) -> None:
    """Each write job adds a row to two tables; in the file, the two always agree, and the file
    stops somewhere between the writes before the export and those after it."""
    workspace.gateway.write_sync(lambda db: db.conn.executemany(
        "INSERT INTO events (type, created_at) VALUES ('contact.updated', ?)", [("x" * 200,)] * 100_000))
    execute(workspace, "INSERT INTO workspace_settings (key, value) VALUES ('n', '0')")

    def pair(db: Any) -> None:
        db.execute("INSERT INTO events (type, created_at) VALUES ('flow.completed', 'pair')")
        db.execute("UPDATE workspace_settings SET value = CAST(value AS INTEGER) + 1 WHERE key = 'n'")

    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            workspace.gateway.write_sync(pair)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.1)
        before = int(value(workspace, "SELECT value FROM workspace_settings WHERE key = 'n'"))
        path = export_to(workspace.settings, tmp_path)
        after = int(value(workspace, "SELECT value FROM workspace_settings WHERE key = 'n'"))
    finally:
        stop.set()
        thread.join()
    conn = open_export(path)
    pairs = conn.execute("SELECT count(*) FROM events WHERE type = 'flow.completed'").fetchone()[0]
    counter = int(conn.execute("SELECT value FROM workspace_settings WHERE key = 'n'").fetchone()[0])
    assert pairs == counter
    assert before <= counter <= after
    assert after > before, "writes went on during the export"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_progress_is_reported_up_to_the_total(workspace: Workspace, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    export.export_workspace(workspace.settings, tmp_path / "p.aatx", PASSPHRASE, progress=lambda d, t: seen.append((d, t)))
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] > 0
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize(("passphrase", "problem"), [
    ("short", "at least 8 characters"),
    ("has a\nnewline", "control characters"),
    ("x'" + "00" * 32 + "'", "x'...'"),
])
def test_unusable_passphrases_are_refused(workspace: Workspace, tmp_path: Path, passphrase: str, problem: str) -> None:
    with pytest.raises(AatError, match=problem.replace(".", r"\.").replace("'", "'")):
        export.export_workspace(workspace.settings, tmp_path / "x.aatx", passphrase)
    assert list(tmp_path.iterdir()) == [workspace.settings.data_dir]


def test_an_existing_file_is_never_overwritten(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "taken.aatx").write_text("keep me")
    with pytest.raises(AatError, match="exists already"):
        export.export_workspace(workspace.settings, tmp_path / "taken.aatx", PASSPHRASE)
    assert (tmp_path / "taken.aatx").read_text() == "keep me"


def test_media_files_travel_with_the_export(workspace: Workspace, tmp_path: Path) -> None:
    media = workspace.settings.data_dir / "media" / "2026"
    media.mkdir(parents=True)
    (media / "photo.jpg").write_bytes(b"\xff\xd8jpeg")
    path = export_to(workspace.settings, tmp_path)
    target = _import_settings(tmp_path)
    result = restore.import_workspace(target, path, PASSPHRASE, ACTOR)
    assert result.files == 1
    assert (target.data_dir / "media" / "2026" / "photo.jpg").read_bytes() == b"\xff\xd8jpeg"


# --- import ----------------------------------------------------------------------------------

async def test_import_restores_every_table_under_a_new_data_key(client: Any, workspace: Workspace, tmp_path: Path) -> None:
    await _some_data(client, workspace)
    path, original = _quiet_export(workspace, tmp_path)
    target = _import_settings(tmp_path, OTHER_MASTER_KEY)
    result = restore.import_workspace(target, path, PASSPHRASE, ACTOR)
    assert result.tables == {t: count for t, (count, _) in original.items() if not t.startswith("sqlite_")}
    assert result.tokens_sealed_elsewhere == 1  # another master key: the Page must be reconnected

    master = load_master_key(env_value=OTHER_MASTER_KEY, file_path=None, data_dir=target.data_dir)
    data_key = DataKeyFile(target.data_dir).load(master)
    source_key = DataKeyFile(workspace.settings.data_dir).load(
        load_master_key(env_value=MASTER_KEY, file_path=None, data_dir=workspace.settings.data_dir))
    assert data_key != source_key
    conn = connection.connect(target.database_path, data_key, readonly=True)
    imported = digests(conn)
    # Identical, but for the import's own audit entry (and the audit log's id sequence).
    changed = ("audit_log", "sqlite_sequence")
    assert {t: d for t, d in imported.items() if t not in changed} == {
        t: d for t, d in original.items() if t not in changed}
    assert imported["audit_log"][0] == original["audit_log"][0] + 1
    sequences = dict(conn.execute("SELECT name, seq FROM sqlite_sequence WHERE name != 'audit_log'").fetchall())
    assert sequences == dict(open_export(path).execute(
        "SELECT name, seq FROM sqlite_sequence WHERE name != 'audit_log'").fetchall())
    last = conn.execute("SELECT action, actor_kind FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert tuple(last) == ("workspace.import", "cli")
    conn.close()
    reopened = open_workspace(target)
    try:
        assert reopened.gateway.read_sync(audit.verify)[0] is True
        assert reopened.gateway.read_sync(lambda db: db.execute("SELECT count(*) FROM messages").fetchone()[0]) == 3
    finally:
        reopened.close()
    assert not (target.data_dir / "workspace.db.import").exists()


def test_import_refuses_a_data_directory_that_is_not_empty(workspace: Workspace, tmp_path: Path) -> None:
    path = export_to(workspace.settings, tmp_path)
    with pytest.raises(AatError, match="is not empty"):
        restore.import_workspace(workspace.settings, path, PASSPHRASE, ACTOR)


def test_import_with_the_wrong_passphrase_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    path = export_to(workspace.settings, tmp_path)
    target = _import_settings(tmp_path)
    with pytest.raises(AatError, match="passphrase does not open"):
        restore.import_workspace(target, path, "the wrong passphrase", ACTOR)
    assert not (target.data_dir / "workspace.db").exists() and not (target.data_dir / "keys.json").exists()


def _altered(path: Path, tmp_path: Path, sql: str) -> Path:
    copy = tmp_path / "altered.aatx"
    shutil.copy(path, copy)
    conn = open_export(copy)
    conn.executescript(sql)
    conn.commit()
    conn.close()
    return copy


def test_import_refuses_a_file_whose_rows_do_not_match_its_manifest(workspace: Workspace, tmp_path: Path) -> None:
    workspace.gateway.write_sync(lambda db: audit.record(db, ACTOR, "test.entry"))
    path = _altered(export_to(workspace.settings, tmp_path), tmp_path, "DELETE FROM audit_log;")
    with pytest.raises(AatError, match="table audit_log has 0 rows, the export recorded 1"):
        restore.import_workspace(_import_settings(tmp_path), path, PASSPHRASE, ACTOR)


def test_import_refuses_a_file_with_a_flipped_byte(workspace: Workspace, tmp_path: Path) -> None:
    path = export_to(workspace.settings, tmp_path)
    raw = bytearray(path.read_bytes())
    raw[4096 + 100] ^= 0x01  # inside the second page
    path.write_bytes(bytes(raw))
    with pytest.raises(AatError, match="damaged or was altered|does not open"):
        restore.import_workspace(_import_settings(tmp_path), path, PASSPHRASE, ACTOR)


def test_import_refuses_an_export_from_a_newer_version(workspace: Workspace, tmp_path: Path) -> None:
    path = _altered(export_to(workspace.settings, tmp_path), tmp_path, """
        INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('appliance', '9999_future', 'x');
        UPDATE aat_export SET value = json_set(value, '$._sqlite_migrations',
            json_extract(value, '$._sqlite_migrations') + 1) WHERE key = 'tables';""")
    with pytest.raises(AatError, match="newer version .*9999_future"):
        restore.import_workspace(_import_settings(tmp_path), path, PASSPHRASE, ACTOR)


def test_import_refuses_an_sqlcipher_file_that_is_not_an_export(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlcipher3.connect(str(path))
    conn.execute(f"PRAGMA key = '{PASSPHRASE}'")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(AatError, match="not an AAT workspace export"):
        restore.import_workspace(_import_settings(tmp_path), path, PASSPHRASE, ACTOR)


def test_an_older_export_is_migrated_on_import(workspace: Workspace, tmp_path: Path) -> None:
    """An export made before this version's last migration gets it applied on import."""
    path = _altered(export_to(workspace.settings, tmp_path), tmp_path, """
        DROP TABLE consent_log; DROP TABLE deletion_requests; DROP INDEX flow_step_events_run;
        DROP TRIGGER consent_log_subscribed; DROP TRIGGER consent_log_marketing;
        DELETE FROM _sqlite_migrations WHERE name = '0009_privacy';
        UPDATE aat_export SET value = json_remove(json_set(value, '$._sqlite_migrations',
            json_extract(value, '$._sqlite_migrations') - 1), '$.consent_log', '$.deletion_requests')
            WHERE key = 'tables';""")
    result = restore.import_workspace(_import_settings(tmp_path), path, PASSPHRASE, ACTOR)
    assert result.migrations_applied == ["0009_privacy"]


# --- the JSON document over the API ------------------------------------------------------------

async def test_the_owner_downloads_the_workspace_as_json_without_secrets(client: Any, workspace: Workspace) -> None:
    from tests.helpers import make_token

    await _some_data(client, workspace)
    response = await client.get("/api/v1/workspace/export", headers=make_token(workspace, "owner"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"].startswith('attachment; filename="workspace-')
    document = response.json()
    assert document["format"] == "aat-workspace-json/1"
    tables = document["tables"]
    counts = workspace.gateway.read_sync(lambda db: export.table_counts(db.conn))
    assert {t: len(tables[t]) for t in ("contacts", "messages", "flow_versions")} == {
        t: counts[t] for t in ("contacts", "messages", "flow_versions")}
    assert [c["external_id"] for c in tables["channels"]] == [PAGE_ID]
    assert not [k for rows in tables.values() for row in rows for k in row if k.endswith(("_enc", "_hash"))]
    assert value(workspace, "SELECT count(*) FROM audit_log WHERE action = 'workspace.export_json'") == 1


async def test_only_the_owner_may_download_the_workspace(client: Any, workspace: Workspace) -> None:
    from tests.helpers import make_token

    response = await client.get("/api/v1/workspace/export", headers=make_token(workspace, "admin"))
    assert response.status_code == 403
    assert value(workspace, "SELECT count(*) FROM audit_log WHERE action = 'workspace.export_json'") == 0
