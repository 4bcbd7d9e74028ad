"""Accounts, sessions and sign-ins in progress. SQL only."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlite_utils import Database

from appliance.store.rows import many, one

__all__ = ["digest", "start_sign_in", "take_sign_in", "find_account", "create_account", "touch_account",
           "create_session", "session_of", "delete_session", "tenants_of", "subscription_of"]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_sign_in(db: Database, *, state: str, provider: str, nonce: str, code_verifier: str, age_confirmed: bool,
                  expires_at: str) -> None:
    db.conn.execute("INSERT INTO sign_ins (state_hash, provider, nonce, code_verifier, age_confirmed, expires_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)", [digest(state), provider, nonce, code_verifier, int(age_confirmed), expires_at])


def take_sign_in(db: Database, state: str, now: str) -> dict[str, Any] | None:
    """The sign-in ``state`` names, consumed (one use); ``None`` when unknown or expired."""
    row = one(db, "SELECT * FROM sign_ins WHERE state_hash = ?", [digest(state)])
    db.conn.execute("DELETE FROM sign_ins WHERE state_hash = ? OR expires_at < ?", [digest(state), now])
    return row if row is not None and row["expires_at"] >= now else None


def find_account(db: Database, provider: str, subject: str) -> dict[str, Any] | None:
    return one(db, "SELECT * FROM accounts WHERE provider = ? AND subject = ?", [provider, subject])


def create_account(db: Database, *, provider: str, subject: str, email: str | None, name: str | None,
                   now: str) -> dict[str, Any]:
    account_id = "acct_" + secrets.token_hex(8)
    db.conn.execute("INSERT INTO accounts (id, provider, subject, email, name, age_confirmed_at, created_at, "
                    "last_sign_in_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [account_id, provider, subject, email, name, now, now, now])
    return one(db, "SELECT * FROM accounts WHERE id = ?", [account_id])  # type: ignore[return-value]


def touch_account(db: Database, account_id: str, *, email: str | None, now: str) -> None:
    db.conn.execute("UPDATE accounts SET last_sign_in_at = ?, email = coalesce(?, email) WHERE id = ?",
                    [now, email, account_id])


def create_session(db: Database, *, token: str, account_id: str, csrf_token: str, now: str, expires_at: str) -> None:
    db.conn.execute("INSERT INTO sessions (token_hash, account_id, csrf_token, created_at, expires_at) "
                    "VALUES (?, ?, ?, ?, ?)", [digest(token), account_id, csrf_token, now, expires_at])


def session_of(db: Database, token: str, now: str) -> dict[str, Any] | None:
    """The live session and its account, joined."""
    return one(db, "SELECT s.csrf_token, s.expires_at, a.* FROM sessions s JOIN accounts a ON a.id = s.account_id "
               "WHERE s.token_hash = ? AND s.expires_at > ?", [digest(token), now])


def delete_session(db: Database, token: str) -> None:
    db.conn.execute("DELETE FROM sessions WHERE token_hash = ?", [digest(token)])


def tenants_of(db: Database, account_id: str, email: str | None) -> list[dict[str, Any]]:
    """Tenants from the account's own checkouts, and those an admin created for its email."""
    return many(db, "SELECT id, name, status, plan FROM tenants WHERE status != 'deleted' AND (id IN "
                "(SELECT tenant_id FROM signups WHERE account_id = ?) OR (owner_email IS NOT NULL AND owner_email = ?)) "
                "ORDER BY created_at", [account_id, email])


def subscription_of(db: Database, tenant_ids: list[str]) -> dict[str, Any] | None:
    if not tenant_ids:
        return None
    marks = ", ".join("?" for _ in tenant_ids)
    return one(db, f"SELECT tenant_id, status, price_id, past_due_since, canceled_at FROM subscriptions "
               f"WHERE tenant_id IN ({marks}) ORDER BY updated_at DESC LIMIT 1", tenant_ids)
