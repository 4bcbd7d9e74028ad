"""``aat-appliance users reset-password``: set a password now (sessions end) or print a one-time
reset link; refusals write nothing; both are in the audit log."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from appliance.store.rows import many, one
from appliance.store.workspace import direct_database
from appliance.team import sessions
from appliance.team.credentials import hash_password, verify_password
from tests.appliance.test_cli import assert_one_line_error, run, settings_for

OLD = "the old password 123"
NEW = "a brand new passphrase"


@pytest.fixture
def with_user(tmp_path: Path) -> Path:
    """A workspace with agent nino@example.com (password ``OLD``) signed in on one session."""
    data_dir = tmp_path / "data"
    with direct_database(settings_for(data_dir)) as db:
        db.execute("INSERT INTO users (email, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                   ["nino@example.com", "Nino", "agent", hash_password(OLD), "2026-11-26T10:00:00.000Z"])
        sessions.new_session(db, 1, max_age=timedelta(days=1), ip=None, user_agent="test")
    return data_dir


def state(data_dir: Path) -> dict[str, object]:
    with direct_database(settings_for(data_dir)) as db:
        return {"hash": one(db, "SELECT password_hash FROM users WHERE id = 1")["password_hash"],
                "sessions": len(many(db, "SELECT id FROM sessions")),
                "audit": [r["action"] for r in many(db, "SELECT action FROM audit_log ORDER BY id")],
                "links": len(many(db, "SELECT token_hash FROM one_time_links"))}


def test_a_password_set_from_stdin_replaces_the_old_and_ends_sessions(with_user: Path) -> None:
    result = run(with_user, "users", "reset-password", "--email", "nino@example.com", "--password-stdin", stdin=NEW + "\n")
    assert result.returncode == 0, result.stderr
    assert "sessions ended" in result.stdout
    after = state(with_user)
    assert verify_password(after["hash"], NEW) and not verify_password(after["hash"], OLD)  # type: ignore[arg-type]
    assert after["sessions"] == 0
    assert after["audit"] == ["user.password_reset"]


def test_without_a_password_it_prints_a_one_time_reset_link(with_user: Path) -> None:
    result = run(with_user, "users", "reset-password", "--email", "nino@example.com",
                 env={"AAT_PUBLIC_URL": "https://inbox.example.com"})
    assert result.returncode == 0, result.stderr
    link = result.stdout.strip()
    assert link.startswith("https://inbox.example.com/reset/")
    with direct_database(settings_for(with_user)) as db:
        assert sessions.peek_link(db, link.rsplit("/", 1)[1], "reset")["user_id"] == 1  # type: ignore[index]
    after = state(with_user)
    assert verify_password(after["hash"], OLD)  # type: ignore[arg-type]
    assert after["audit"] == ["user.reset_link"]


@pytest.mark.parametrize(("args", "stdin", "expected"), [
    (["--email", "nobody@example.com", "--password-stdin"], NEW,
     "no user has this email; `aat-appliance users create` makes one"),
    (["--email", "nobody@example.com"], "", "no user has this email; `aat-appliance users create` makes one"),
    (["--email", "nino@example.com", "--password-stdin"], "short", "the password needs at least 12 characters"),
])
def test_refusals_write_nothing(with_user: Path, args: list[str], stdin: str, expected: str) -> None:
    before = state(with_user)
    assert assert_one_line_error(run(with_user, "users", "reset-password", *args, stdin=stdin)) == expected
    assert state(with_user) == before
