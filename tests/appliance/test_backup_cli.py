"""``aat-appliance backup`` / ``backup verify`` / ``backup restore`` as real processes beside a
running server, and the refusal to start on a database from a newer version (a downgrade)."""

from __future__ import annotations

import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.settings import Settings
from appliance.store import connection
from appliance.store.workspace import load_keys
from tests.e2e.conftest import BIN, MASTER_KEY, Appliance, Template, base_env, run_cli
from tests.standins.graph_api import GraphStandIn


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], cwd=cwd, env=env or base_env(), capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("template")
    run_cli("migrate", "--data-dir", str(root / "data"), cwd=root, env=base_env())
    out = run_cli("tokens", "create", "--name", "backup-test", "--data-dir", str(root / "data"), cwd=root, env=base_env())
    return Template(root / "data", out.strip().splitlines()[-1])


@pytest.fixture
def running(tmp_path: Path, template: Template) -> Iterator[Appliance]:
    graph = GraphStandIn().start()
    (tmp_path / "live").mkdir()
    app = Appliance(tmp_path / "live", template, graph)
    try:
        yield app.start()
    finally:
        app.cleanup()
        graph.stop()


def test_backup_while_serving_then_restore_and_serve_it(running: Appliance, template: Template,
                                                        tmp_path: Path) -> None:
    made = running.api.post("/api/v1/canned-replies", json={"shortcut": "hours", "text": "9 to 5"})
    assert made.status_code == 201, made.text
    backups = tmp_path / "backups"
    done = cli("backup", "--to", str(backups), "--data-dir", str(running.data_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"backup written: {backups}/aat-backup-")
    checked = cli("backup", "verify", str(backups), "--data-dir", str(running.data_dir), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[-1] == "verified: the backup restores and is intact"

    (tmp_path / "second").mkdir()
    restored = cli("backup", "restore", str(backups), "--data-dir", str(tmp_path / "second" / "data"), cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    graph = GraphStandIn().start()
    # Appliance copies the directory it is given: here the restored one.
    second = Appliance(tmp_path / "second-run", Template(tmp_path / "second" / "data", template.api_token), graph)
    try:
        second.start()
        replies = second.api.get("/api/v1/canned-replies")
        assert replies.status_code == 200  # the API token of the backup still signs in
        assert [r["shortcut"] for r in replies.json()["items"]] == ["hours"]
    finally:
        second.cleanup()
        graph.stop()


def test_verify_exits_1_on_a_damaged_backup(running: Appliance, tmp_path: Path) -> None:
    assert cli("backup", "--to", str(tmp_path / "b"), "--data-dir", str(running.data_dir), cwd=tmp_path).returncode == 0
    [path] = (tmp_path / "b").glob("aat-backup-*.tar")
    with tarfile.open(path) as archive:  # the damage lands in the database, not in the tar's padding
        database = max(archive.getmembers(), key=lambda member: member.size)
    data = bytearray(path.read_bytes())
    middle = database.offset_data + database.size // 2
    data[middle:middle + 4096] = b"\0" * 4096
    path.write_bytes(bytes(data))
    done = cli("backup", "verify", str(path), "--data-dir", str(running.data_dir), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {path.name} is NOT usable: ")


def test_backup_without_a_destination_is_a_usage_error(tmp_path: Path) -> None:
    done = cli("backup", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == ("error: say where to write the backup: --to DIR (or set AAT_BACKUP_DIR) "
                           "(see `aat-appliance backup --help`)\n")
    assert not (tmp_path / "data").exists()


def test_serve_refuses_a_database_from_a_newer_version(template: Template, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = cli("migrate", "--data-dir", str(data_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    settings = Settings(data_dir=data_dir, master_key=MASTER_KEY)
    _, key = load_keys(settings, allow_generate=False)
    conn = connection.connect(settings.database_path, key)
    with conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                     "VALUES ('appliance', '9000_from_the_future', '2030-01-01')")
    conn.close()
    before = settings.database_path.read_bytes()
    for command in (["serve", "--port", "1"], ["migrate"]):
        refused = cli(*command, "--data-dir", str(data_dir), cwd=tmp_path)
        assert refused.returncode == 1
        assert refused.stderr.splitlines()[-1] == (
            "error: this database was upgraded by a newer version of AAT (it has migration(s) this version does "
            "not know: 9000_from_the_future). Downgrades are not supported: run that newer version again, or "
            "restore a backup taken before the upgrade")
    assert settings.database_path.read_bytes() == before
