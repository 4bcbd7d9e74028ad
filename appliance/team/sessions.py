"""Browser sessions, sign-in throttling and one-time links. SQL only.

A session is a random 256-bit token in the ``aat-session`` cookie; the database keeps its
SHA-256, the user, a CSRF token (sent back by the page as ``X-CSRF-Token`` or a form field),
an absolute expiry and the last time it was seen (idle expiry). Signing in always creates a
new session (no fixation); signing out deletes it.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlite_utils import Database

from appliance.store.rows import one
from appliance.team.credentials import hash_token
from appliance.timeutil import from_iso, to_iso, utcnow

__all__ = [
    "new_session", "session_for", "touch", "end_session", "end_user_sessions", "throttle_state",
    "record_failure", "clear_failures", "new_link", "take_link", "peek_link", "purge_expired",
]


def new_session(
    db: Database, user_id: int, *, max_age: timedelta, ip: str | None, user_agent: str | None
) -> tuple[str, str]:
    """``(cookie token, csrf token)`` of a fresh session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    db.conn.execute(
        """INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, ip, user_agent)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        [hash_token(token), user_id, csrf, to_iso(now), to_iso(now), to_iso(now + max_age), ip,
         (user_agent or "")[:300]],
    )
    return token, csrf


def session_for(db: Database, token: str, *, idle: timedelta) -> dict[str, Any] | None:
    """The live session for a cookie token, with its user; ``None`` when unknown or expired."""
    row = one(
        db,
        """SELECT s.id, s.user_id, s.csrf_token, s.last_seen_at, s.expires_at, u.email, u.role, u.name,
                  u.disabled_at
           FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?""",
        [hash_token(token)],
    )
    if row is None or row["disabled_at"] is not None:
        return None
    now = utcnow()
    if from_iso(row["expires_at"]) <= now or from_iso(row["last_seen_at"]) + idle <= now:
        return None
    return row


def touch(db: Database, session_id: int, now: str) -> None:
    db.conn.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", [now, session_id])


def end_session(db: Database, token: str) -> None:
    db.conn.execute("DELETE FROM sessions WHERE token_hash = ?", [hash_token(token)])


def end_user_sessions(db: Database, user_id: int) -> int:
    return db.conn.execute("DELETE FROM sessions WHERE user_id = ?", [user_id]).rowcount


def throttle_state(db: Database, keys: list[str]) -> str | None:
    """The latest ``locked_until`` among ``keys`` still in the future, else ``None``."""
    now = to_iso(utcnow())
    marks = ", ".join("?" * len(keys))
    row = one(db, f"SELECT max(locked_until) AS until FROM signin_throttle WHERE key IN ({marks}) "
                  "AND locked_until > ?", [*keys, now])
    return row["until"] if row else None


def record_failure(db: Database, key: str, *, limit: int, window: timedelta, lock: timedelta) -> None:
    now = utcnow()
    row = one(db, "SELECT failures, window_start FROM signin_throttle WHERE key = ?", [key])
    if row is None or from_iso(row["window_start"]) + window <= now:
        failures, start = 1, now
    else:
        failures, start = row["failures"] + 1, from_iso(row["window_start"])
    locked = to_iso(now + lock) if failures >= limit else None
    db.conn.execute(
        """INSERT INTO signin_throttle (key, failures, window_start, locked_until) VALUES (?, ?, ?, ?)
           ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start,
               locked_until = excluded.locked_until""",
        [key, failures, to_iso(start), locked],
    )


def clear_failures(db: Database, key: str) -> None:
    db.conn.execute("DELETE FROM signin_throttle WHERE key = ?", [key])


def new_link(db: Database, purpose: str, user_id: int, *, valid_for: timedelta) -> str:
    """A one-time link token (invitation or password reset); earlier ones of the user end."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.conn.execute("DELETE FROM one_time_links WHERE user_id = ? AND purpose = ?", [user_id, purpose])
    db.conn.execute(
        "INSERT INTO one_time_links (token_hash, purpose, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        [hash_token(token), purpose, user_id, to_iso(now), to_iso(now + valid_for)],
    )
    return token


def peek_link(db: Database, token: str, purpose: str) -> dict[str, Any] | None:
    row = one(
        db,
        """SELECT l.user_id, l.expires_at, l.used_at, u.email FROM one_time_links l JOIN users u ON u.id = l.user_id
           WHERE l.token_hash = ? AND l.purpose = ?""",
        [hash_token(token), purpose],
    )
    if row is None or row["used_at"] is not None or from_iso(row["expires_at"]) <= utcnow():
        return None
    return row


def take_link(db: Database, token: str, purpose: str) -> dict[str, Any] | None:
    """Use a link once: its user, or ``None`` when unknown, used or expired."""
    row = peek_link(db, token, purpose)
    if row is not None:
        db.conn.execute("UPDATE one_time_links SET used_at = ? WHERE token_hash = ?",
                        [to_iso(utcnow()), hash_token(token)])
    return row


def purge_expired(db: Database, *, idle: timedelta) -> dict[str, int]:
    """Expired sessions and links (a retention job)."""
    now = utcnow()
    sessions = db.conn.execute(
        "DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?", [to_iso(now), to_iso(now - idle)]
    ).rowcount
    links = db.conn.execute("DELETE FROM one_time_links WHERE expires_at <= ? OR used_at IS NOT NULL",
                            [to_iso(now)]).rowcount
    throttles = db.conn.execute(
        "DELETE FROM signin_throttle WHERE (locked_until IS NULL OR locked_until <= ?) AND window_start <= ?",
        [to_iso(now), to_iso(now - timedelta(days=1))],
    ).rowcount
    return {"sessions": sessions, "links": links, "throttles": throttles}
