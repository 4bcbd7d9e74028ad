"""Backups in process: snapshot, verify, restore, retention, schedule (appliance/backup)."""

from __future__ import annotations

import base64
import json
import tarfile
import threading
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from huey import SqliteHuey

from appliance.backup import tasks
from appliance.backup.snapshot import BackupError, create_backup, list_backups, prune
from appliance.backup.verify import restore_backup, verify_backup
from appliance.settings import Settings
from appliance.store.workspace import Workspace, open_workspace
from tests.conftest import MASTER_KEY
from tests.helpers import connect_channel, make_token


def _channel_token(settings: Settings) -> str:
    ws = open_workspace(settings)
    try:
        row = ws.gateway.read_sync(lambda db: db.execute(
            "SELECT type, external_id, access_token_enc FROM channels").fetchone())
        return ws.fields.decrypt(row[2], f"channels.access_token:{row[0]}:{row[1]}")
    finally:
        ws.close()


@pytest.fixture
def filled(settings: Settings, workspace: Workspace) -> Settings:
    connect_channel(workspace, "messenger", "PAGE-1", token="EAAG-secret-page-token")
    make_token(workspace)
    media = settings.data_dir / "media" / "2026"
    media.mkdir(parents=True)
    (media / "photo.jpg").write_bytes(b"\xff\xd8 a photo")
    return settings


def test_round_trip_restores_rows_media_and_tokens(filled: Settings, tmp_path: Path) -> None:
    result = create_backup(filled, tmp_path / "backups")
    assert result.tables["channels"] == 1 and result.tables["api_tokens"] == 1
    report = verify_backup(filled, result.path)
    assert report.ok, report.problems
    assert report.tables == result.tables and report.files == 1

    target = filled.model_copy(update={"data_dir": tmp_path / "restored"})
    restore_backup(target, result.path)
    assert (target.data_dir / "media" / "2026" / "photo.jpg").read_bytes() == b"\xff\xd8 a photo"
    restored = [target.data_dir / n for n in ("media", "media/2026", "media/2026/photo.jpg", "workspace.db", "keys.json")]
    assert {p.name: oct(p.stat().st_mode & 0o077) for p in restored} == {p.name: "0o0" for p in restored}
    assert _channel_token(target) == "EAAG-secret-page-token"  # same master key, same data key


def test_backup_is_encrypted_and_holds_no_master_key(filled: Settings, tmp_path: Path) -> None:
    path = create_backup(filled, tmp_path / "b").path
    raw = path.read_bytes()
    with tarfile.open(path) as tar:
        names = sorted(tar.getnames())
        db = tar.extractfile("workspace.db").read()  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert names == ["keys.json", "manifest.json", "media/2026/photo.jpg", "workspace.db"]
    assert not db.startswith(b"SQLite format 3")
    assert b"EAAG-secret-page-token" not in raw and b"PAGE-1" not in db
    assert MASTER_KEY.encode() not in raw and base64.b64decode(MASTER_KEY) not in raw
    assert manifest["format"] == "aat-backup/1" and set(manifest["files"]) == {
        "keys.json", "workspace.db", "media/2026/photo.jpg"}


def test_snapshot_is_consistent_while_a_writer_commits(settings: Settings, workspace: Workspace,
                                                       tmp_path: Path) -> None:
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            workspace.gateway.write_sync(lambda db, n=n: db.execute(
                "INSERT INTO canned_replies (shortcut, text, created_at, updated_at) VALUES (?, 'x', '', '')",
                [f"s{n}"]))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        paths = [create_backup(settings, tmp_path / "b", now=datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC)).path
                 for i in range(3)]
    finally:
        stop.set()
        writer.join()
    for path in paths:
        report = verify_backup(settings, path)
        assert report.ok, report.problems  # the row counts of the file equal the manifest's snapshot


def test_verify_finds_a_damaged_file(filled: Settings, tmp_path: Path) -> None:
    path = create_backup(filled, tmp_path / "b").path
    data = bytearray(path.read_bytes())
    with tarfile.open(path) as tar:
        member = tar.getmember("workspace.db")
    data[member.offset_data + 5000] ^= 0xFF
    path.write_bytes(bytes(data))
    report = verify_backup(filled, path)
    assert report.problems == ["workspace.db does not match its checksum (the file was changed or damaged)"]


def test_verify_with_another_master_key_says_so(filled: Settings, tmp_path: Path) -> None:
    path = create_backup(filled, tmp_path / "b").path
    other = filled.model_copy(update={"master_key": SecretStr(base64.b64encode(b"o" * 32).decode())})
    report = verify_backup(other, path)
    assert len(report.problems) == 1 and "master key does not unwrap" in report.problems[0]


def test_verify_refuses_a_backup_from_a_newer_version(settings: Settings, workspace: Workspace,
                                                      tmp_path: Path) -> None:
    workspace.gateway.write_sync(lambda db: db.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('appliance', '9999_future', '')"))
    report = verify_backup(settings, create_backup(settings, tmp_path / "b").path)
    assert len(report.problems) == 1
    assert "newer version of the appliance (migrations unknown here: 9999_future)" in report.problems[0]


def test_restore_refuses_a_data_directory_with_a_workspace(filled: Settings, tmp_path: Path) -> None:
    path = create_backup(filled, tmp_path / "b").path
    before = sorted(p.name for p in filled.data_dir.iterdir())
    with pytest.raises(BackupError, match="already holds a workspace"):
        restore_backup(filled, path)
    assert sorted(p.name for p in filled.data_dir.iterdir()) == before


def test_restore_of_a_damaged_backup_writes_nothing(filled: Settings, tmp_path: Path) -> None:
    path = create_backup(filled, tmp_path / "b").path
    path.write_bytes(path.read_bytes()[:20000])  # truncated
    target = filled.model_copy(update={"data_dir": tmp_path / "empty"})
    with pytest.raises(BackupError, match="not a readable backup|missing from the backup|checksum"):
        restore_backup(target, path)
    assert not (target.data_dir / "workspace.db").exists() and not (target.data_dir / "keys.json").exists()


def test_prune_keeps_the_newest(settings: Settings, workspace: Workspace, tmp_path: Path) -> None:
    directory = tmp_path / "b"
    start = datetime(2026, 3, 1, tzinfo=UTC)
    made = [create_backup(settings, directory, now=start + timedelta(hours=i)).path for i in range(5)]
    (directory / "aat-backup-20260301T000000000Z.tar.partial").write_bytes(b"left by a crash")
    (directory / "notes.txt").write_text("not a backup")
    removed = prune(directory, 2)
    assert sorted(removed) == sorted([*made[:3], directory / "aat-backup-20260301T000000000Z.tar.partial"])
    assert list_backups(directory) == made[3:]
    assert (directory / "notes.txt").exists()


def test_scheduled_backup_runs_when_due_and_keeps_n(settings: Settings, workspace: Workspace,
                                                    tmp_path: Path) -> None:
    directory = tmp_path / "scheduled"
    configured = settings.model_copy(update={"backup_dir": directory, "backup_keep": 2,
                                             "backup_interval_hours": 6})
    huey = SqliteHuey(name="test", filename=str(tmp_path / "q.db"), immediate=True)
    tasks.register(huey, types.SimpleNamespace(settings=configured))  # type: ignore[arg-type]
    job = next(cls for name, cls in huey._registry._registry.items()  # noqa: SLF001
               if name.endswith("backup.scheduled"))
    first = job().execute()  # what the consumer runs every 15 minutes
    assert first["backup"].startswith("aat-backup-") and first["removed"] == 0
    assert job().execute() == {"backup": "not due"}
    newest = list_backups(directory)[-1]
    now = datetime.now(UTC)
    assert not tasks.due(configured, now + timedelta(hours=5))
    assert tasks.due(configured, now + timedelta(hours=6, minutes=1))
    assert newest.exists()
    assert not tasks.due(settings, now)  # no AAT_BACKUP_DIR: no schedule
