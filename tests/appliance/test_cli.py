"""``aat-appliance`` as an operator runs it: a real subprocess on a temporary data directory.

Every failure must be one plain line on stderr (``error: ...``) with exit code 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar.testing import AsyncTestClient

from appliance.app import create_app
from appliance.settings import Settings
from appliance.store import connection
from appliance.store.migrate import migration_files
from appliance.store.rows import many
from appliance.store.workspace import ProcessLock, direct_database, load_keys, migrate
from tests.conftest import MASTER_KEY
from tests.helpers import journal_settled, post_webhook
from tests.appliance.api_helpers import messenger_text

CLI = str(Path(sys.executable).parent / "aat-appliance")
PASSWORD = "correct horse battery staple"
OTHER_KEY = "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXIhISE="  # 32 other bytes


def run(data_dir: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``--data-dir`` after ``args``; the environment holds only our key."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AAT_")}
    clean.update({"AAT_MASTER_KEY": MASTER_KEY, **(env or {})})
    clean = {k: v for k, v in clean.items() if v is not None}
    return subprocess.run([CLI, *args, "--data-dir", str(data_dir)], input=stdin, capture_output=True, text=True,
                          env=clean, cwd=data_dir.parent, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0].removeprefix("error: ")


def settings_for(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, master_key=MASTER_KEY)


def query(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    with direct_database(settings_for(data_dir)) as db:
        return many(db, sql)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def migrated(data_dir: Path) -> Path:
    """A migrated workspace (made in-process: only the commands under test run as processes)."""
    settings = settings_for(data_dir)
    migrate(settings, load_keys(settings)[1])
    return data_dir


@pytest.fixture
def locked(migrated: Path) -> Iterator[Path]:
    """Another process (this one) holds the workspace lock, as a running server does."""
    lock = ProcessLock(migrated)
    lock.acquire("testing")
    yield migrated
    lock.release()


# --- migrate -----------------------------------------------------------------------------------

def test_migrate_applies_then_has_nothing_to_do(data_dir: Path) -> None:
    names = [name for name, _ in migration_files("appliance")]
    first = run(data_dir, "migrate")
    assert (first.returncode, first.stdout.strip()) == (0, f"applied {len(names)} migration(s): {', '.join(names)}")
    second = run(data_dir, "migrate")
    assert (second.returncode, second.stdout.strip()) == (0, "applied 0 migration(s)")


def test_migrate_refuses_while_another_process_holds_the_lock(locked: Path) -> None:
    message = assert_one_line_error(run(locked, "migrate"))
    assert "another process holds" in message and "stop it before migrating" in message


# --- users -------------------------------------------------------------------------------------

def test_users_create_stores_an_argon2id_hash(migrated: Path) -> None:
    result = run(migrated, "users", "create", "--email", "nino@example.com", "--role", "agent",
                 "--password-stdin", stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "created agent nino@example.com (id 1)"
    [user] = query(migrated, "SELECT email, role, password_hash FROM users")
    assert (user["email"], user["role"]) == ("nino@example.com", "agent")
    assert user["password_hash"].startswith("$argon2id$")
    assert PasswordHasher().verify(user["password_hash"], PASSWORD)  # the newline is not part of it


@pytest.mark.parametrize(("args", "stdin", "expected"), [
    (["--email", "nino@example.com", "--role", "agent", "--password-stdin"], "short\n",
     "the password: String should have at least 12 characters"),
    (["--email", "nino.example.com", "--role", "agent"], "",
     "--email: is not an email address (expected name@example.com)"),
])
def test_users_create_refuses_bad_input_and_writes_nothing(
    migrated: Path, args: list[str], stdin: str, expected: str
) -> None:
    assert assert_one_line_error(run(migrated, "users", "create", *args, stdin=stdin)) == expected
    assert query(migrated, "SELECT * FROM users") == []


def test_users_create_refuses_a_taken_email(migrated: Path) -> None:
    run(migrated, "users", "create", "--email", "nino@example.com", "--role", "agent")
    message = assert_one_line_error(run(migrated, "users", "create", "--email", "NINO@example.com", "--role", "admin"))
    assert message == "a user with email 'NINO@example.com' already exists"
    assert len(query(migrated, "SELECT * FROM users")) == 1


# --- tokens ------------------------------------------------------------------------------------

def test_tokens_create_prints_the_token_last_and_stores_its_hash(migrated: Path) -> None:
    result = run(migrated, "tokens", "create", "--name", "zapier")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("aat_") and len(token) > 40
    [stored] = query(migrated, "SELECT * FROM api_tokens")
    assert (stored["name"], stored["role"]) == ("zapier", "admin")
    assert all(token not in str(value) for value in stored.values())


async def test_a_cli_token_authenticates_against_the_app(migrated: Path) -> None:
    token = run(migrated, "tokens", "create", "--name", "ops", "--role", "agent").stdout.strip().splitlines()[-1]
    app = create_app(settings_for(migrated), run_queue=False)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert response.json()["token"]["name"] == "ops"
        assert response.json()["token"]["role"] == "agent"


def test_tokens_create_on_a_fresh_data_directory(data_dir: Path) -> None:
    result = run(data_dir, "tokens", "create", "--name", "first")
    assert result.returncode == 0, result.stderr
    assert [t["name"] for t in query(data_dir, "SELECT name FROM api_tokens")] == ["first"]


# --- rekey -------------------------------------------------------------------------------------

def test_rekey_rotates_the_data_key(migrated: Path) -> None:
    run(migrated, "users", "create", "--email", "nino@example.com", "--role", "owner")
    before = (migrated / "keys.json").read_text()
    _, old_key = load_keys(settings_for(migrated))
    result = run(migrated, "rekey")
    assert (result.returncode, result.stdout.strip()) == (0, "data key rotated; the database is re-encrypted")
    assert (migrated / "keys.json").read_text() != before
    assert not (migrated / "keys.json.next").exists()
    assert [u["email"] for u in query(migrated, "SELECT email FROM users")] == ["nino@example.com"]
    with pytest.raises(connection.WrongKey):
        connection.connect(migrated / "workspace.db", old_key, readonly=True)


def test_rekey_refuses_while_another_process_holds_the_lock(locked: Path) -> None:
    before = (locked / "keys.json").read_text()
    message = assert_one_line_error(run(locked, "rekey"))
    assert "another process holds" in message and "stop it before rotating the data key" in message
    assert (locked / "keys.json").read_text() == before


# --- journal -----------------------------------------------------------------------------------

async def test_journal_retry_puts_failed_deliveries_back(client: AsyncTestClient, settings: Settings) -> None:
    response = await post_webhook(client, b'{"object": "permissions", "entry": []}')
    assert response.status_code == 200
    await journal_settled(client)
    runtime = client.app.state.runtime
    journal = "SELECT id, state, processed_at FROM webhook_journal ORDER BY id"
    [failed] = await runtime.db.read(many, journal)
    assert failed["state"] == "failed"
    result = run(settings.data_dir, "journal", "retry")
    assert (result.returncode, result.stdout.strip()) == (0, "1 delivery queued again")
    # The server replays it with the next batch (another delivery wakes it).
    await post_webhook(client, messenger_text("2460001112223334", "m_wake"))
    await journal_settled(client)
    replayed = (await runtime.db.read(many, journal))[0]
    assert replayed["state"] == "failed"  # still an unknown object, but processed a second time
    assert replayed["processed_at"] > failed["processed_at"]


def test_journal_retry_with_nothing_failed(migrated: Path) -> None:
    result = run(migrated, "journal", "retry")
    assert (result.returncode, result.stdout.strip()) == (0, "0 deliveries queued again")


def test_journal_retry_of_no_such_row(migrated: Path) -> None:
    message = assert_one_line_error(run(migrated, "journal", "retry", "--id", "99"))
    assert message == "journal row 99 does not exist, has not failed, or was purged"


# --- every error is one line ---------------------------------------------------------------------

def _other_key_workspace(data_dir: Path) -> dict[str, str]:
    run(data_dir, "migrate", env={"AAT_MASTER_KEY": OTHER_KEY})
    return {}


def _damaged_database(data_dir: Path) -> dict[str, str]:
    settings = settings_for(data_dir)
    migrate(settings, load_keys(settings)[1])
    (data_dir / "workspace.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (data_dir / f"workspace.db{suffix}").unlink(missing_ok=True)
    return {}


ERRORS: dict[str, tuple[Any, list[str], str]] = {
    # case: (prepare(data_dir) -> extra env, arguments, what the message must contain)
    "unknown command": (lambda d: {}, ["frobnicate"], "No such command 'frobnicate'"),
    "unknown role": (lambda d: {}, ["users", "create", "--email", "a@b.co", "--role", "boss"], "'boss' is not one of"),
    "missing option": (lambda d: {}, ["tokens", "create"], "Missing option '--name'"),
    "blank token name": (lambda d: {}, ["tokens", "create", "--name", " "], "give a name of 1 to 200 characters"),
    "bad setting": (lambda d: {"AAT_PORT": "eighty"}, ["migrate"], "invalid settings: port:"),
    "master key not base64": (lambda d: {"AAT_MASTER_KEY": "not base64!"}, ["migrate"],
                              "AAT_MASTER_KEY is not valid base64"),
    "master key too short": (lambda d: {"AAT_MASTER_KEY": "c2hvcnQ="}, ["migrate"], "exactly 32 bytes"),
    "wrong master key": (_other_key_workspace, ["migrate"], "does not unwrap this workspace's data key"),
    "no master key for rekey": (lambda d: {"AAT_MASTER_KEY": None}, ["rekey"], "no master key"),
    "missing key file": (lambda d: {"AAT_MASTER_KEY": None, "AAT_MASTER_KEY_FILE": str(d / "nope.key")},
                         ["migrate"], "cannot read AAT_MASTER_KEY_FILE"),
    "damaged database": (_damaged_database, ["tokens", "create", "--name", "x"], "cannot be used"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_every_error_is_one_plain_line_with_exit_code_1(data_dir: Path, case: str) -> None:
    prepare, args, expected = ERRORS[case]
    data_dir.mkdir(parents=True, exist_ok=True)
    env = prepare(data_dir)
    result = run(data_dir, *args, env=env)
    assert expected in assert_one_line_error(result)
    assert result.stdout == ""


@pytest.mark.parametrize("args", [["--help"], ["users", "--help"], ["--version"]])
def test_help_and_version_exit_0(data_dir: Path, args: list[str]) -> None:
    result = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout


def test_keys_json_never_holds_the_data_key_in_clear(migrated: Path) -> None:
    record = json.loads((migrated / "keys.json").read_text())
    _, data_key = load_keys(settings_for(migrated))
    assert data_key.hex() not in json.dumps(record) and set(record) >= {"nonce", "wrapped"}
