"""``aat-appliance export | import | export-json | destroy`` as an operator runs them: real
subprocesses; every failure one plain line on stderr with exit code 1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import audit
from appliance.settings import Settings
from appliance.store.workspace import ProcessLock, direct_database, load_keys, migrate
from tests.appliance.privacy_helpers import PASSPHRASE, export_to, open_export
from tests.appliance.test_cli import assert_one_line_error, query, run, settings_for

OTHER_KEY = "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXIhISE="


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Path:
    """A migrated workspace with a channel (its token encrypted), a contact and a message."""
    data_dir = tmp_path / "data"
    settings = settings_for(data_dir)
    migrate(settings, load_keys(settings)[1])
    with direct_database(settings) as db:
        db.execute("""INSERT INTO channels (type, external_id, access_token_enc, created_at, updated_at)
                      VALUES ('messenger', '111', 'v1:sealed', 'x', 'x')""")
        db.execute("INSERT INTO contacts (channel_id, external_id, name, created_at, updated_at) "
                   "VALUES (1, '222', 'Tamar', 'x', 'x')")
        db.execute("INSERT INTO conversations (contact_id, channel_id, created_at, updated_at) VALUES (1, 1, 'x', 'x')")
        db.execute("""INSERT INTO messages (conversation_id, contact_id, channel_id, direction, kind, text, status,
                          sent_by, occurred_at, created_at, updated_at)
                      VALUES (1, 1, 1, 'in', 'text', 'gamarjoba', 'received', 'contact', 'x', 'x', 'x')""")
        db.execute("INSERT INTO webhook_journal (received_at, body) VALUES ('x', ?)", [b'{"object":"page"}'])
        db.execute("INSERT INTO api_tokens (name, token_hash, prefix, role, created_at) "
                   "VALUES ('zapier', 'deadbeef', 'aat_x', 'admin', 'x')")
    return data_dir


@pytest.fixture
def locked(workspace_dir: Path) -> Iterator[Path]:
    lock = ProcessLock(workspace_dir)
    lock.acquire("testing")
    yield workspace_dir
    lock.release()


# --- export ------------------------------------------------------------------------------------

def test_export_prints_a_generated_passphrase_once_as_the_last_line(workspace_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ws.aatx"
    result = run(workspace_dir, "export", "--out", str(out))
    assert result.returncode == 0, result.stderr
    passphrase = result.stdout.strip().splitlines()[-1]
    assert len(passphrase) >= 24 and result.stdout.count(passphrase) == 1
    assert "exporting" in result.stderr and f"to {out}" in result.stderr
    assert open_export(out, passphrase).execute("SELECT text FROM messages").fetchall() == [("gamarjoba",)]
    assert [r["action"] for r in query(workspace_dir, "SELECT action FROM audit_log")] == ["workspace.export"]


def test_export_with_a_passphrase_on_stdin_prints_no_secret(workspace_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ws.aatx"
    result = run(workspace_dir, "export", "--out", str(out), "--passphrase-stdin", stdin=PASSPHRASE + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and PASSPHRASE not in result.stderr
    assert open_export(out).execute("SELECT count(*) FROM messages").fetchone() == (1,)
    with direct_database(settings_for(workspace_dir)) as db:
        intact, checked, _ = audit.verify(db)
        entries = [dict(r) for r in db.query("SELECT * FROM audit_log")]
    assert intact and checked == 1 and entries[0]["action"] == "workspace.export"
    assert PASSPHRASE not in json.dumps(entries)


def test_export_works_while_the_server_holds_the_lock(locked: Path, tmp_path: Path) -> None:
    result = run(locked, "export", "--out", str(tmp_path / "ws.aatx"), "--passphrase-stdin", stdin=PASSPHRASE)
    assert result.returncode == 0, result.stderr


def test_export_beside_an_older_server_refuses_before_copying(locked: Path, tmp_path: Path) -> None:
    """A server started before an upgrade has not applied the new migrations: the export's audit
    entry could not be written, so it refuses at once instead of after minutes of copying."""
    with direct_database(settings_for(locked)) as db:
        db.execute("DELETE FROM _sqlite_migrations WHERE name = (SELECT max(name) FROM _sqlite_migrations)")
    out = tmp_path / "ws.aatx"
    message = assert_one_line_error(run(locked, "export", "--out", str(out), "--passphrase-stdin", stdin=PASSPHRASE))
    assert "needs migrations first" in message
    assert not out.exists() and not out.with_name("ws.aatx.partial").exists()


@pytest.mark.parametrize(("args", "stdin", "expected"), [
    (["--passphrase-stdin"], "short", "the passphrase must have at least 8 characters"),
    ([], "", "exists already; choose a new file name"),
])
def test_export_refusals_are_one_line(workspace_dir: Path, tmp_path: Path, args: list[str], stdin: str,
                                      expected: str) -> None:
    out = tmp_path / "ws.aatx"
    if not args:
        out.write_text("taken")
    assert expected in assert_one_line_error(run(workspace_dir, "export", "--out", str(out), *args, stdin=stdin))


def test_export_of_a_missing_workspace_is_one_line(tmp_path: Path) -> None:
    message = assert_one_line_error(run(tmp_path / "nothing", "export", "--out", str(tmp_path / "x.aatx")))
    assert message.startswith("there is no workspace in")
    assert not (tmp_path / "nothing" / "keys.json").exists()


# --- import ------------------------------------------------------------------------------------

def _exported(workspace_dir: Path, tmp_path: Path) -> Path:
    """An export made in-process: only the command under test runs as a process."""
    return export_to(settings_for(workspace_dir), tmp_path, "ws.aatx")


def test_import_restores_into_an_empty_directory(workspace_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "restored"
    result = run(target, "import", str(_exported(workspace_dir, tmp_path)), "--passphrase-stdin",
                 stdin=PASSPHRASE + "\n", env={"AAT_MASTER_KEY": OTHER_KEY})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported ") and str(target) in result.stdout
    assert "1 channel token(s) were encrypted by another master key" in result.stderr
    with direct_database(Settings(data_dir=target, master_key=OTHER_KEY)) as db:
        assert [r["text"] for r in db.query("SELECT text FROM messages")] == ["gamarjoba"]
        assert [r["action"] for r in db.query("SELECT action FROM audit_log ORDER BY id")] == [
            "workspace.import"]  # the export's own entry is written after the file was taken


def test_import_refusals_are_one_line(workspace_dir: Path, tmp_path: Path) -> None:
    export = _exported(workspace_dir, tmp_path)
    wrong = assert_one_line_error(run(tmp_path / "a", "import", str(export), "--passphrase-stdin", stdin="wrong passphrase"))
    assert "passphrase does not open" in wrong
    full = assert_one_line_error(run(workspace_dir, "import", str(export), "--passphrase-stdin", stdin=PASSPHRASE))
    assert "is not empty" in full
    missing = assert_one_line_error(run(tmp_path / "b", "import", str(tmp_path / "nope.aatx"), "--passphrase-stdin",
                                        stdin=PASSPHRASE))
    assert "does not exist" in missing


# --- export-json ---------------------------------------------------------------------------------

def test_export_json_writes_every_table_without_secrets(workspace_dir: Path, tmp_path: Path) -> None:
    result = run(workspace_dir, "export-json", "--out", "-")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["format"] == "aat-workspace-json/1"
    tables = document["tables"]
    assert tables["messages"][0]["text"] == "gamarjoba"
    assert "access_token_enc" not in tables["channels"][0]
    assert "token_hash" not in tables["api_tokens"][0] and tables["api_tokens"][0]["name"] == "zapier"
    assert tables["webhook_journal"][0]["body"] == {"base64": "eyJvYmplY3QiOiJwYWdlIn0="}
    assert "audit_log" in tables and "flow_versions" in tables
    assert not [t for t in tables if t.startswith(("knowledge_fts", "sqlite_"))]
    out = tmp_path / "ws.json"
    assert run(workspace_dir, "export-json", "--out", str(out)).returncode == 0
    assert json.loads(out.read_text())["tables"] == tables
    assert "already" in assert_one_line_error(run(workspace_dir, "export-json", "--out", str(out)))


# --- destroy -----------------------------------------------------------------------------------

def test_destroy_refuses_without_yes_and_changes_nothing(workspace_dir: Path) -> None:
    before = sorted(p.name for p in workspace_dir.iterdir())
    message = assert_one_line_error(run(workspace_dir, "destroy"))
    assert message.startswith("refusing to destroy the workspace without --yes")
    assert sorted(p.name for p in workspace_dir.iterdir()) == before


def test_destroy_shreds_the_key_and_removes_the_store_without_the_master_key(workspace_dir: Path) -> None:
    assert (workspace_dir / "keys.json").exists() and (workspace_dir / "workspace.db").exists()
    (workspace_dir / "queue.db").write_bytes(b"queue")
    result = run(workspace_dir, "destroy", "--yes", env={"AAT_MASTER_KEY": None})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "destroyed: shredded keys.json; removed 2 file(s)"
    assert sorted(p.name for p in workspace_dir.iterdir()) == ["appliance.lock"]
    again = run(workspace_dir, "destroy", "--yes")
    assert (again.returncode, again.stdout.strip()) == (0, f"nothing to destroy in {workspace_dir}")


def test_destroy_refuses_while_the_server_runs(locked: Path) -> None:
    message = assert_one_line_error(run(locked, "destroy", "--yes"))
    assert "stop it before destroying the workspace" in message
    assert (locked / "keys.json").exists()


def test_a_destroyed_workspace_cannot_be_opened_from_a_copy(workspace_dir: Path, tmp_path: Path) -> None:
    """A copy of the database taken before the teardown (a backup) is useless after it."""
    copy = tmp_path / "backup.db"
    copy.write_bytes((workspace_dir / "workspace.db").read_bytes())
    assert run(workspace_dir, "destroy", "--yes").returncode == 0
    (workspace_dir / "workspace.db").write_bytes(copy.read_bytes())
    message = assert_one_line_error(run(workspace_dir, "export", "--out", str(tmp_path / "x.aatx")))
    assert "keys.json is missing" in message

